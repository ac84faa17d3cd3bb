"""`oomlab lab delivery`'s page: the truth table, one row per measured cell, each with its evidence
(states over time, Celery's events, every kill's detection, where the broker had the message) and a
link to the cell's own run report; below it, why each outcome happens and what avoids it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from html import escape
from statistics import median
from typing import Any

from oomlab.config.durations import format_seconds
from oomlab.config.lab_cells import AXES
from oomlab.record.delivery import KillDetection
from oomlab.report.html_data import scrub
from oomlab.report.html_page import (
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
from oomlab.report.html_run import detector_text, seconds_text
from oomlab.workflows.lab.delivery import CellResult, read_cells
from oomlab.workflows.lab.explain import explanations
from oomlab.workflows.lab.verdict import OUTCOMES

COLUMNS = [*AXES, "outcome", "evidence", "state", "message", "runs", "redelivery", "stuck", "poison loop", "oomlab"]
COLUMNS += ["Celery", "hb expiry", "Flower"]


def _median_of(detection: list[KillDetection], key: str) -> float | None:
    values = [value for d in detection if (value := getattr(d, key)) is not None]
    return median(values) if values else None


def _relative(history: Sequence[tuple[float | None, str | None]], t0: float | None) -> str:
    """[(mono, what), ...] as "what +1.23 s" steps from t0 (the first kill, when there was one)."""
    if not history:
        return "-"
    base = t0 if t0 is not None else history[0][0]
    return " → ".join(
        f"{what} {'' if at is None or base is None else ('+' if at >= base else '') + format_seconds(at - base)}".strip()
        for at, what in history
    )


DETECTORS = ("oomlab", "celery_pool_noticed", "celery_worker_lost", "celery_heartbeat_expiry")


def evidence(result: CellResult, lab_dir: str) -> str:
    delivery = result.delivery
    facts: list[tuple[str, object]] = []
    if delivery is not None:
        first_kill = min((d.kernel_time_mono for d in delivery.detection), default=None)
        for verdict in delivery.verdicts:
            facts += [
                ("task", verdict.task_id),
                ("states (from the first kill)", _relative(verdict.state_history, first_kill)),
                ("Celery events", _relative(verdict.events, first_kill)),
                ("delivery counts", verdict.delivery_counts),
                ("redeliveries", [f"{r.how} after {format_seconds(r.seconds)}" for r in verdict.redeliveries]),
            ]
        for kill in delivery.detection:
            seen = ", ".join(
                f"{k} +{detector_text(value)}" for k in DETECTORS if (value := getattr(kill, k)) is not None
            )
            facts.append((f"kill of {kill.role} {kill.pid}", seen or "not seen"))
        facts += [(f"broker: {loc.task_id[:8]}", loc.where) for loc in delivery.locations]
        facts.append(("worker restarts", len(delivery.worker_restarts)))
        facts += [(f"setting {k}", v) for k, v in flatten(scrub(delivery.settings))]
    run_dir = result.run_dir
    link = relative_link(lab_dir, os.path.join(run_dir, REPORT_FILE), "the cell's run report") if run_dir else ""
    return f"<details><summary>evidence</summary>{key_values(facts)}{link}</details>"


def _row(result: CellResult, lab_dir: str) -> list:
    axes = [cell(getattr(result.cell, axis)) for axis in AXES]
    delivery = result.delivery
    if result.status != "complete" or delivery is None or not delivery.verdicts:
        blanks = [cell("") for _ in COLUMNS[len(AXES) + 3 :]]
        return [*axes, cell(result.status, css="outcome"), cell(""), cell(result.message or ""), *blanks]
    v = delivery.verdicts[0]
    loop = v.poison_loop
    times = [
        _median_of(delivery.detection, key) for key in ("oomlab", "celery_pool_noticed", "celery_heartbeat_expiry")
    ]
    redelivery = v.first_redelivery_s
    evidence_cell = cell("")
    evidence_cell.html = evidence(result, lab_dir)
    return [
        *axes,
        cell(v.outcome, css=f"outcome outcome-{v.outcome}", tip=OUTCOMES.get(v.outcome, "")),
        evidence_cell,
        cell(v.final_state or "-"),
        cell(v.message),
        cell(v.executions, v.executions),
        cell(seconds_text(redelivery), redelivery if redelivery is not None else ""),
        cell("yes" if v.stuck_in_started else "no"),
        cell(f"{loop.kills} kills, {loop.per_minute}/min" if loop else "no"),
        *[cell(seconds_text(t), t if t is not None else "") for t in times],
        cell("-" if delivery.flower_worker_online is None else delivery.flower_worker_online),
    ]


def _why(results: list[CellResult]) -> str:
    parts = [
        f"<h3>{escape(outcome)} <small>({count} cell{'s' if count > 1 else ''}; {escape(measured)})</small></h3>"
        f"<p>{escape(why)}</p><p><b>Avoid:</b> {escape(avoid)}</p>"
        for outcome, count, why, avoid, measured in explanations([r for r in results if r.status != "pending"])
    ]
    return "".join(parts) or '<p class="note">no finished cell yet</p>'


def lab_sections(lab: dict[str, Any], lab_dir: str) -> list[str]:
    results = read_cells(lab, os.path.join(lab_dir, "lab.json"))
    rows = [_row(result, lab_dir) for result in results]
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
        section("Why, and what avoids it", _why(results), "why"),
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
