"""`oomlab lab delivery`'s page: the truth table, one row per measured cell, each with its evidence
(states over time, Celery's events, every kill's detection, where the broker had the message) and a
link to the cell's own run report; below it, why each outcome happens and what avoids it."""

from __future__ import annotations

import os
from html import escape
from statistics import median
from typing import Any

from harness.lab.cells import AXES, Cell
from harness.lab.delivery import CellResult
from harness.lab.explain import explanations
from harness.lab.verdict import OUTCOMES
from harness.report.html_data import scrub
from harness.report.html_page import (
    FOOTER,
    REPORT_FILE,
    cell,
    flatten,
    key_values,
    page,
    read_json,
    relative_link,
    section,
    table,
    write_page,
)
from harness.report.html_run import seconds_text

COLUMNS = [*AXES, "outcome", "evidence", "state", "message", "runs", "redelivery", "stuck", "poison loop", "oomlab"]
COLUMNS += ["Celery", "hb expiry", "Flower"]


def _median_of(detection: list[dict[str, Any]], key: str) -> float | None:
    values = [d[key] for d in detection if d.get(key) is not None]
    return median(values) if values else None


def _relative(history: list, t0: float | None) -> str:
    """[(mono, what), ...] as "what +1.23 s" steps from t0 (the first kill, when there was one)."""
    if not history:
        return "-"
    base = t0 if t0 is not None else history[0][0]
    return " → ".join(f"{what} {'' if at is None else f'{at - base:+.2f} s'}".strip() for at, what in history)


def evidence(entry: dict[str, Any], lab_dir: str) -> str:
    delivery = entry.get("delivery") or {}
    detection = delivery.get("detection") or []
    first_kill = min((d["kernel_time_mono"] for d in detection), default=None)
    facts: list[tuple[str, object]] = []
    for verdict in delivery.get("verdicts") or []:
        facts += [
            ("task", verdict.get("task_id")),
            ("states (from the first kill)", _relative(verdict.get("state_history") or [], first_kill)),
            ("Celery events", _relative(verdict.get("events") or [], first_kill)),
            ("delivery counts", verdict.get("delivery_counts")),
            ("redeliveries", [f"{r['how']} after {r['seconds']:.2f} s" for r in verdict.get("redeliveries") or []]),
        ]
    for kill in detection:
        seen = ", ".join(
            f"{k} +{seconds_text(kill[k])}"
            for k in ("oomlab", "celery_pool_noticed", "celery_worker_lost", "celery_heartbeat_expiry")
            if kill.get(k) is not None
        )
        facts.append((f"kill of {kill.get('role')} {kill.get('pid')}", seen or "not seen"))
    facts += [(f"broker: {loc.get('task_id', '?')[:8]}", loc.get("where")) for loc in delivery.get("locations") or []]
    facts.append(("worker restarts", len(delivery.get("worker_restarts") or [])))
    facts += [(f"setting {k}", v) for k, v in flatten(scrub(delivery.get("settings") or {}))]
    run_dir = entry.get("run_dir")
    link = relative_link(lab_dir, os.path.join(run_dir, REPORT_FILE), "the cell's run report") if run_dir else ""
    return f"<details><summary>evidence</summary>{key_values(facts)}{link}</details>"


def _row(entry: dict[str, Any], lab_dir: str) -> list:
    axes = [cell(entry.get("cell", {}).get(axis, "?")) for axis in AXES]
    delivery = entry.get("delivery") or {}
    verdicts = delivery.get("verdicts") or []
    if entry.get("status") != "complete" or not verdicts:
        blanks = [cell("") for _ in COLUMNS[len(AXES) + 3 :]]
        return [*axes, cell(entry.get("status"), css="outcome"), cell(""), cell(entry.get("message") or ""), *blanks]
    v = verdicts[0]
    detection = delivery.get("detection") or []
    loop = v.get("poison_loop")
    times = [_median_of(detection, key) for key in ("oomlab", "celery_pool_noticed", "celery_heartbeat_expiry")]
    redelivery = v.get("first_redelivery_s")
    evidence_cell = cell("")
    evidence_cell.html = evidence(entry, lab_dir)
    return [
        *axes,
        cell(v["outcome"], css=f"outcome outcome-{v['outcome']}", tip=OUTCOMES.get(v["outcome"], "")),
        evidence_cell,
        cell(v.get("final_state") or "-"),
        cell(v.get("message")),
        cell(v.get("executions"), v.get("executions")),
        cell(seconds_text(redelivery), redelivery if redelivery is not None else ""),
        cell("yes" if v.get("stuck_in_started") else "no"),
        cell(f"{loop['kills']} kills, {loop['per_minute']}/min" if loop else "no"),
        *[cell(seconds_text(t), t if t is not None else "") for t in times],
        cell(delivery.get("flower_worker_online", "-")),
    ]


def _why(entries: list[dict[str, Any]]) -> str:
    results = [
        CellResult(Cell(**e["cell"]), e.get("status", "?"), e.get("run_dir"), e.get("message"), e.get("delivery") or {})
        for e in entries
        if e.get("cell") and e.get("status") != "pending"
    ]
    parts = [
        f"<h3>{escape(outcome)} <small>({count} cell{'s' if count > 1 else ''}; {escape(measured)})</small></h3>"
        f"<p>{escape(why)}</p><p><b>Avoid:</b> {escape(avoid)}</p>"
        for outcome, count, why, avoid, measured in explanations(results)
    ]
    return "".join(parts) or '<p class="note">no finished cell yet</p>'


def lab_sections(lab: dict[str, Any], lab_dir: str) -> list[str]:
    entries = lab.get("cells") or []
    rows = [_row(entry, lab_dir) for entry in entries]
    numeric = ["runs", "redelivery", "oomlab", "Celery", "hb expiry"]
    return [
        section(
            "What happens to a task after an OOM kill",
            table(COLUMNS, rows, "truth-table", numeric=numeric),
            "truth-table-section",
            "Each row is one real run. message: where the broker had it after the window. oomlab / Celery / "
            "hb expiry: medians from the kernel's kill to oomlab knowing, Celery's main process logging the "
            "death, and celery.events.state calling the worker dead. Open a row's evidence for the record.",
        ),
        section("Why, and what avoids it", _why(entries), "why"),
        section("Lab settings", key_values(flatten(scrub(lab.get("options") or {}))), "settings"),
    ]


def write_lab_report(lab_dir: str) -> str:
    lab = read_json(os.path.join(lab_dir, "lab.json"))
    cells = lab.get("cells") or []
    html_text = page(
        "oomlab lab delivery",
        f"{len(cells)} cells · status {lab.get('status', '?')} · {os.path.basename(os.path.abspath(lab_dir))}",
        lab_sections(lab, lab_dir),
        FOOTER,
    )
    return write_page(os.path.join(lab_dir, REPORT_FILE), html_text)
