"""The page of `oomlab recommend --rate` (and of `--concurrency` without `--memory`), written beside its
JSON record: the fleet table with the cheapest safe row marked, the split-queue plan with each class's
own proving run, the proof under load at the chosen setting, and the hand-over files. Built from the
record alone, so `oomlab report` rebuilds it."""

from __future__ import annotations

import os
from html import escape
from typing import Any

from oomlab.config.durations import format_seconds
from oomlab.config.sizes import format_size
from oomlab.report.html_page import (
    FOOTER,
    REPORT_FILE,
    Cell,
    bullet_list,
    cards,
    cell,
    html_beside,
    page,
    read_json,
    relative_link,
    section,
    table,
    write_page,
)
from oomlab.report.html_svg import Bar, bars_svg
from oomlab.workflows.recommend.handover import LABELS


def _seconds(value: float | None) -> str:
    return format_seconds(value)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:g}/s"


def _run_link(run_dir: str | None, page_dir: str, text: str = "") -> Cell:
    """A link to a run's own page, named by its directory (or `text`, the directory then in the tip)."""
    item = cell("", tip=os.path.basename(run_dir or "") if text else "")
    if run_dir:
        item.html = relative_link(page_dir, os.path.join(run_dir, REPORT_FILE), text or os.path.basename(run_dir))
    return item


def _is_choice(row: dict[str, Any], choice: dict[str, Any] | None) -> bool:
    return bool(choice) and row == choice


def fleet_table(record: dict[str, Any], page_dir: str) -> str:
    rows, attrs = [], []
    choice = record.get("choice")
    for row in record.get("rows") or []:
        c = row.get("candidate") or {}
        chosen = _is_choice(row, choice)
        safe = row.get("safe") and row.get("replicas")
        verdict = "cheapest safe" if chosen else ("safe" if row.get("safe") else f"not safe: {row.get('why', '')}")
        rows.append(
            [
                cell(row.get("replicas") if safe else "-", row.get("replicas") or 0),
                cell(format_size(c.get("limit_bytes")), c.get("limit_bytes") or 0),
                cell(c.get("pool")),
                cell(c.get("concurrency"), c.get("concurrency") or 0),
                cell(_rate(c.get("per_replica_per_s")), c.get("per_replica_per_s") or 0),
                cell(format_size(row.get("total_bytes")) if safe else "-", row.get("total_bytes") or 0),
                cell(f"{row.get('headroom', 0):.0%}" if safe else "-", row.get("headroom") or 0),
                cell(_seconds(row.get("expected_queue_wait_p95_s")), row.get("expected_queue_wait_p95_s") or 0),
                cell(_seconds(c.get("measured_queue_wait_p95_s")), c.get("measured_queue_wait_p95_s") or 0),
                cell(c.get("kills", 0), c.get("kills") or 0),
                cell(
                    verdict + (f" · {c['note']}" if c.get("note") else ""),
                    css="outcome outcome-succeeded" if row.get("safe") else "outcome outcome-killed",
                ),
                _run_link(c.get("run_dir"), page_dir, "load run"),
            ]
        )
        attrs.append('class="chosen" data-chosen="1"' if chosen else "")
    columns = [
        "replicas",
        "limit",
        "pool",
        "concurrency",
        "per replica",
        "total",
        "headroom",
        "wait p95 model",
        "wait p95 saturated",
        "OOM kills",
        "verdict",
        "run",
    ]
    numeric = ["replicas", "limit", "concurrency", "per replica", "total", "headroom", "OOM kills"]
    return table(columns, rows, "fleet", numeric=numeric, row_attrs=attrs)


def choice_cards(record: dict[str, Any]) -> str:
    target = record.get("target") or {}
    choice = record.get("choice")
    items = [(_rate(target.get("rate")), "target rate", "")]
    if target.get("queue_wait_p95_s") is not None:
        items.append((_seconds(target["queue_wait_p95_s"]), "queue wait p95 asked", ""))
    if choice:
        c = choice.get("candidate") or {}
        items.append(
            (
                f"{choice.get('replicas')} × {format_size(c.get('limit_bytes'))}",
                f"{c.get('pool')} --concurrency {c.get('concurrency')}",
                "good",
            )
        )
        items.append((format_size(choice.get("total_bytes")), "total memory, one worker class", ""))
    else:
        items.append(("none", "no candidate carries the rate safely", "bad"))
    split = record.get("split") or {}
    if split.get("dominant"):
        two = _total(split.get("two_classes"))
        if _all_held(record):
            items.append((format_size(two), "total memory, split queues", "good"))
        elif _failed(record):  # not an alternative to the proven choice: no total beside it
            items.append(("NOT proven", "split queues: failed their proofs, not handed over", "bad"))
        else:
            items.append(("not proven", f"split queues ({format_size(two)}): not run", ""))
    return cards(items)


def _total(classes: list[dict[str, Any]] | None) -> int:
    return sum((c.get("replicas") or 0) * (c.get("limit_bytes") or 0) for c in classes or [])


def _all_held(record: dict[str, Any]) -> bool:
    proofs = record.get("split_proofs") or []
    return bool(proofs) and all(p.get("held") for p in proofs)


def _failed(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in record.get("split_proofs") or [] if not p.get("held")]


def split_table(split: dict[str, Any]) -> str:
    rows, attrs = [], []
    for plan, classes in (("one class", split.get("one_class")), ("two classes", split.get("two_classes"))):
        for c in classes or []:
            rows.append(
                [
                    cell(plan),
                    cell(c.get("queue")),
                    cell(", ".join(c.get("kinds") or [])),
                    cell(f"{c.get('share', 0):.0%}", c.get("share") or 0),
                    cell(format_size(c.get("limit_bytes")), c.get("limit_bytes") or 0),
                    cell(c.get("pool")),
                    cell(c.get("concurrency"), c.get("concurrency") or 0),
                    cell(c.get("replicas"), c.get("replicas") or 0),
                    cell(format_size(_total([c])), _total([c])),
                    cell(_rate(c.get("per_replica_per_s")), c.get("per_replica_per_s") or 0),
                ]
            )
            attrs.append(f'data-plan="{"two" if plan == "two classes" else "one"}"')
    columns = ["plan", "queue", "kinds", "share", "limit", "pool", "concurrency", "replicas", "total"]
    numeric = ["share", "limit", "concurrency", "replicas", "total", "sent per replica"]
    return table([*columns, "sent per replica"], rows, "split-classes", numeric=numeric, row_attrs=attrs)


def class_proofs_table(record: dict[str, Any], page_dir: str) -> str:
    rows, attrs = [], []
    for proof in record.get("split_proofs") or []:
        run = proof.get("run") or {}
        sent, done = sum((proof.get("sent") or {}).values()), sum((proof.get("succeeded") or {}).values())
        held = proof.get("held")
        rows.append(
            [
                cell(proof.get("queue"), tip=f"the worker consumed {proof.get('consumed', '')}"),
                cell(
                    "held" if held else f"NOT proven: {proof.get('why', '')}",
                    css="outcome outcome-succeeded" if held else "outcome outcome-killed",
                ),
                cell(_rate(run.get("asked_per_s")), run.get("asked_per_s") or 0),
                cell(f"{run.get('seconds', 0):g} s", run.get("seconds") or 0),
                cell(f"{done}/{sent}", done),
                cell(run.get("kills", 0), run.get("kills") or 0),
                cell(run.get("recycled"), run.get("recycled") or 0),
                cell(_seconds(run.get("queue_wait_p95_s")), run.get("queue_wait_p95_s") or 0),
                cell(format_size(run.get("group_peak_bytes")), run.get("group_peak_bytes") or 0),
                _run_link(run.get("run_dir"), page_dir),
            ]
        )
        attrs.append(f'data-held="{1 if held else 0}"')
    if not rows:
        return '<p class="note">the classes were not proven (--no-prove, or a class fits under no limit)</p>'
    columns = ["queue", "proof", "sent", "for", "finished", "OOM kills", "recycled", "queue wait p95", "group peak"]
    numeric = ["sent", "finished", "OOM kills", "recycled", "group peak"]
    return table([*columns, "run"], rows, "class-proofs", numeric=numeric, row_attrs=attrs)


def plans_figure(record: dict[str, Any]) -> str:
    split, choice = record.get("split") or {}, record.get("choice")
    bars = []
    if choice:
        c = choice.get("candidate") or {}
        bars.append(
            Bar(
                "cheapest fleet row",
                float(choice.get("total_bytes") or 0),
                f"{choice.get('replicas')} × {format_size(c.get('limit_bytes'))} {c.get('pool')} x{c.get('concurrency')}",
            )
        )
    one, two = _total(split.get("one_class")), _total(split.get("two_classes"))
    bars.append(Bar("one class (prefork)", float(one), f"one class sized for the heavy kind: {format_size(one)}"))
    held = _all_held(record)
    if not _failed(record):  # a plan that failed its proofs is no bar beside the proven choice
        bars.append(
            Bar(
                "two classes",
                float(two),
                f"small + big queue: {format_size(two)}, {'each class proven' if held else 'not proven'}",
                "good" if held else "",
            )
        )
    return bars_svg(bars, "total memory of each plan")


def split_sections(record: dict[str, Any], page_dir: str) -> list[str]:
    split = record.get("split")
    if not split:
        return []
    if not split.get("dominant"):
        return [section("Split queues", f"<p>{escape(split.get('sentence', ''))}</p>", "split")]
    body = f"<p>{escape(split.get('sentence', ''))}</p>" + split_table(split) + plans_figure(record)
    failed = "; ".join(f"queue {p.get('queue')}: {p.get('why', '')}" for p in _failed(record))
    if failed:
        body = (
            f'<p class="note">The two-class plan is NOT proven ({escape(failed)}): its files were not '
            f"written and it is no alternative to the proven choice.</p>" + body
        )
    note = (
        "Each class is sized by the plan's rule on its own kinds' peaks, its replicas by its share of the rate "
        "over concurrency / median run time."
    )
    proofs_note = (
        "One real run per class of the two-class plan: one replica at its limit and concurrency, consuming only "
        "its queue, sent only its kinds (task_routes) at its share of the rate per replica."
    )
    return [
        section("Split queues", body, "split", note),
        section("Each class proven", class_proofs_table(record, page_dir), "class-proofs-section", proofs_note),
    ]


def _load_row(label: str, run: dict[str, Any], concurrency: int | None, page_dir: str) -> list[Cell]:
    return [
        cell(label),
        cell(concurrency, concurrency or 0),
        cell(_rate(run.get("asked_per_s")), run.get("asked_per_s") or 0),
        cell(f"{run.get('seconds', 0):g} s", run.get("seconds") or 0),
        cell(_rate(run.get("achieved_per_s")), run.get("achieved_per_s") or 0),
        cell(
            f"{run.get('kills', 0)} OOM kill(s)" if run.get("kills") else "no OOM",
            css="outcome outcome-killed" if run.get("kills") else "outcome outcome-succeeded",
        ),
        cell(run.get("recycled"), run.get("recycled") or 0),
        cell(_seconds(run.get("queue_wait_p95_s")), run.get("queue_wait_p95_s") or 0),
        cell(format_size(run.get("group_peak_bytes")), run.get("group_peak_bytes") or 0),
        _run_link(run.get("run_dir"), page_dir),
    ]


def proof_section(record: dict[str, Any], page_dir: str) -> list[str]:
    proof = record.get("proof")
    if not proof:
        return []
    choice = (record.get("choice") or {}).get("candidate") or {}
    rows = [_load_row("at the setting", proof.get("setting") or {}, choice.get("concurrency"), page_dir)]
    if proof.get("step_up"):
        rows.append(_load_row("one step up", proof["step_up"], proof.get("step_up_concurrency"), page_dir))
    met = {None: "no queue-wait target given", True: "queue wait met", False: "queue wait NOT met"}
    columns = ["run", "concurrency", "sent", "for", "achieved", "result", "recycled", "queue wait p95"]
    columns += ["group peak", "record"]
    proven = f"<p>proven: {escape(proof['proven'])}</p>" if proof.get("proven") else ""
    fleet = proof.get("fleet") or {}
    if fleet:
        proven = f"<p>the fleet: {escape(fleet.get('sentence', ''))}</p>" + _fleet_replicas(fleet) + proven
    body = (
        proven
        + f"<p>{escape(met.get(proof.get('queue_wait_met'), ''))}</p>"
        + table(columns, rows, "proof-runs", numeric=["concurrency", "sent", "achieved", "recycled"])
    )
    return [section("Proof under load", body, "proof", "The chosen setting at the target rate per replica.")]


def _fleet_replicas(fleet: dict[str, Any]) -> str:
    rows = [
        [
            cell(r.get("name")),
            cell(r.get("tasks_run"), r.get("tasks_run") or 0),
            cell(r.get("succeeded"), r.get("succeeded") or 0),
            cell(
                r.get("killed"),
                r.get("killed") or 0,
                css="outcome outcome-killed" if r.get("killed") else "outcome outcome-succeeded",
            ),
            cell(format_size(r.get("group_peak_bytes")), r.get("group_peak_bytes") or 0),
        ]
        for r in fleet.get("replicas") or []
    ]
    columns = ["replica", "ran", "succeeded", "OOM-killed", "group peak"]
    return table(columns, rows, "proof-replicas", numeric=["ran", "succeeded", "OOM-killed"])


def handover_section(record: dict[str, Any], page_dir: str) -> list[str]:
    files = record.get("handover") or {}
    if not files:
        return []
    parts = []
    for kind, paths in files.items():
        names = [os.path.basename(path) for path in paths]  # written beside the record: found there when copied
        links = ", ".join(relative_link(page_dir, os.path.join(page_dir, name), name) for name in names)
        mark = (record.get("handover_marks") or {}).get(kind)
        marked = f' <span class="note">({escape(mark)})</span>' if mark else ""
        parts.append(f"<li>{escape(LABELS.get(kind, kind))}{marked}: {links}</li>")
    return [section("Hand-over", f"<ul>{''.join(parts)}</ul>", "handover")]


def inverse_sections(record: dict[str, Any], page_dir: str) -> list[str]:
    items = [
        (format_size(record.get("limit_bytes")), f"the limit --concurrency {record.get('concurrency')} needs", "good"),
        (format_size(record.get("below_bytes")), "just below: should be OOM-killed", ""),
        (format_size(record.get("per_child_bytes")), "per child", ""),
        (format_size(record.get("fixed_bytes")), "fixed", ""),
    ]
    rows = []
    for label, key, limit in (("at that limit", "held", "limit_bytes"), ("just below", "below", "below_bytes")):
        trial = record.get(key)
        if trial:
            rows.append(
                [
                    cell(label),
                    cell(format_size(record.get(limit)), record.get(limit) or 0),
                    cell(
                        "OOM-killed" if trial.get("killed") else "no OOM",
                        css="outcome outcome-killed" if trial.get("killed") else "outcome outcome-succeeded",
                    ),
                    cell(trial.get("kills"), trial.get("kills") or 0),
                    cell(trial.get("tasks"), trial.get("tasks") or 0),
                    cell(format_size(trial.get("group_peak_bytes"))),
                    _run_link(trial.get("run_dir"), page_dir),
                ]
            )
    trials = table(["trial", "limit", "result", "OOM kills", "tasks", "group peak", "run"], rows, "limit-trials")
    if record.get("verdict"):
        trials = f"<p>{escape(record['verdict'])}</p>" + trials
    return [
        section("The limit a concurrency needs", cards(items), "limit"),
        section("Trials", trials if rows else bullet_list([]), "limit-trials-section"),
    ]


def capacity_sections(record: dict[str, Any], page_dir: str) -> list[str]:
    if record.get("mode") == "concurrency":
        return inverse_sections(record, page_dir) + handover_section(record, page_dir)
    return [
        section("Choice", choice_cards(record), "choice"),
        section(
            "Fleet",
            fleet_table(record, page_dir),
            "fleet-section",
            "One row per candidate limit and pool, from a short load run above what one replica can do. "
            "Wait p95 model: Erlang C with the measured rate at the fleet's arrival rate per replica; "
            "wait p95 saturated: what tasks waited in that overdriven run.",
        ),
        *split_sections(record, page_dir),
        *proof_section(record, page_dir),
        *handover_section(record, page_dir),
    ]


def write_capacity_report(json_path: str) -> str:
    record = read_json(json_path)
    page_dir = os.path.dirname(os.path.abspath(json_path))
    target = record.get("target") or {}
    if record.get("mode") == "concurrency":
        subtitle = f"{record.get('scenario', '?')} · the limit --concurrency {record.get('concurrency')} needs"
    else:
        subtitle = f"{record.get('scenario', '?')} · a fleet for {_rate(target.get('rate'))}"
    html_text = page("oomlab recommend", subtitle, capacity_sections(record, page_dir), FOOTER)
    return write_page(html_beside(json_path), html_text)
