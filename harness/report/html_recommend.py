"""`oomlab recommend`'s page, written beside its JSON record: the plan and why, the plan's usage
model set against every trial's measured group peak under the limit, the trials with links to their
run reports, the measured profile, and the settings to paste."""

from __future__ import annotations

import os
from html import escape
from typing import Any

from oomlab.config.sizes import format_size
from oomlab.report.html_page import (
    FOOTER,
    REPORT_FILE,
    bullet_list,
    cards,
    cell,
    html_beside,
    key_values,
    page,
    read_json,
    relative_link,
    section,
    table,
    write_page,
)
from oomlab.report.html_svg import Bar, bars_svg


def plan_cards(plan: dict[str, Any], proof: dict[str, Any] | None) -> str:
    items = [
        (
            "none" if plan.get("no_safe_setting") else str(plan.get("concurrency", "?")),
            "safe --concurrency" if plan.get("no_safe_setting") else "recommended --concurrency",
            "good" if plan.get("concurrency") else "bad",
        ),
        (str(plan.get("rule_of_thumb", "-")), "rule of thumb (limit / RSS)", ""),
    ]
    if plan.get("max_memory_per_child_kib"):
        items.append((f"{plan['max_memory_per_child_kib']} KiB", "worker_max_memory_per_child", ""))
    if plan.get("max_tasks_per_child"):
        items.append((str(plan["max_tasks_per_child"]), "worker_max_tasks_per_child", ""))
    if proof is not None:
        failing = proof.get("smallest_failing")
        items.append((str(failing) if failing else "none", "smallest concurrency OOM-killed", "bad" if failing else ""))
    return cards(items)


def model_figure(plan: dict[str, Any], trials: list[dict[str, Any]]) -> str:
    """Per trial: what the plan's model predicts (fixed + N x per child) and what the group really peaked at."""
    fixed, per_child = plan.get("fixed_bytes") or 0, plan.get("per_child_bytes") or 0
    bars = []
    for trial in sorted(trials, key=lambda t: t["concurrency"]):
        n = trial["concurrency"]
        bars.append(
            Bar(f"{n} × model", float(fixed + n * per_child), f"model at concurrency {n}: fixed + {n} × per child")
        )
        peak = trial.get("group_peak_bytes") or 0
        verdict = f"{trial.get('kills', 0)} OOM kill(s)" if trial.get("killed") else "no OOM"
        bars.append(
            Bar(
                f"{n} × measured",
                float(peak),
                f"trial at concurrency {n}: group peak {format_size(peak)}, {verdict}",
                "bad" if trial.get("killed") else "good",
            )
        )
    if not bars:
        return '<p class="note">no trial runs (--no-prove, or no safe setting)</p>'
    return bars_svg(bars, "the plan's model against the trials' group peaks", plan.get("limit_bytes"), "limit")


def trials_table(trials: list[dict[str, Any]], page_dir: str) -> str:
    rows = [
        [
            cell(t["concurrency"], t["concurrency"]),
            cell(t.get("tasks"), t.get("tasks")),
            cell(
                f"{t.get('kills', 0)} OOM kill(s)" if t.get("killed") else "no OOM",
                css="outcome outcome-killed" if t.get("killed") else "outcome outcome-succeeded",
            ),
            cell(format_size(t.get("group_peak_bytes")), t.get("group_peak_bytes") or ""),
            cell(t.get("recycled"), t.get("recycled")),
            cell(t.get("status")),
            cell(""),
        ]
        for t in trials
    ]
    for row, t in zip(rows, trials, strict=True):
        row[-1].html = relative_link(page_dir, os.path.join(t["run_dir"], REPORT_FILE), os.path.basename(t["run_dir"]))
    return table(
        ["concurrency", "tasks", "result", "group peak", "recycled", "status", "run"],
        rows,
        "trials",
        numeric=["concurrency", "tasks", "group peak", "recycled"],
    )


def profile_pairs(profile: dict[str, Any]) -> list[tuple[str, object]]:
    return [
        (key, format_size(value) if key.endswith("_bytes") and isinstance(value, int | float) else value)
        for key, value in profile.items()
        if not isinstance(value, list)
    ]


def recommend_sections(record: dict[str, Any], page_dir: str) -> list[str]:
    plan = record.get("plan") or {}
    proof = record.get("proof")
    trials = (proof or {}).get("trials") or []
    profile = record.get("profile") or {}
    warning = (
        f'<p class="status-bad">no safe setting: {escape(plan["no_safe_setting"])}</p>'
        if plan.get("no_safe_setting")
        else ""
    )
    measured = (
        relative_link(page_dir, os.path.join(profile.get("run_dir", ""), REPORT_FILE), "the measuring run's report")
        if profile.get("run_dir")
        else ""
    )
    vpa = record.get("vpa") or {}
    sections = [
        section("Plan", warning + plan_cards(plan, proof) + bullet_list(plan.get("reasons") or []), "plan"),
        section(
            "The model against the trials",
            model_figure(plan, trials),
            "model",
            "Bars: the plan's predicted group usage per concurrency and the group's measured peak in each trial; red: the trial was OOM-killed.",
        ),
        section(
            "Trial runs", trials_table(trials, page_dir) if trials else '<p class="note">none</p>', "trials-section"
        ),
        section("Measured at concurrency 1", key_values(profile_pairs(profile)) + measured, "profile"),
    ]
    if vpa:
        sections.append(
            section(
                "VPA-style rule on the same samples", key_values((k, format_size(v)) for k, v in vpa.items()), "vpa"
            )
        )
    if record.get("snippet"):
        sections.append(section("Settings", f"<pre>{escape(record['snippet'])}</pre>", "snippet"))
    return sections


def write_recommend_report(json_path: str) -> str:
    record = read_json(json_path)
    page_dir = os.path.dirname(os.path.abspath(json_path))
    subtitle = f"{record.get('scenario', '?')} · variant {record.get('variant', '?')} · limit {format_size(record.get('limit_bytes'))}"
    html_text = page("oomlab recommend", subtitle, recommend_sections(record, page_dir), FOOTER)
    return write_page(html_beside(json_path), html_text)
