"""`oomlab gate`'s page, written beside the run it judged (RUN_DIR/gate.html): every check, each
regression drawn as baseline against current with the threshold's allowance, the judged run's
memory timeline, and (when the runs were profiled) the allocation sites that grew."""

from __future__ import annotations

import os
from html import escape
from typing import Any

from oomlab.config.sizes import format_size
from oomlab.report.gate import cells, headline
from oomlab.report.html_data import RunView, Series
from oomlab.report.html_page import FOOTER, REPORT_FILE, cards, cell, page, relative_link, section, table, write_page
from oomlab.report.html_run import timeline_figure
from oomlab.report.html_svg import Bar, bars_svg
from oomlab.workflows.gate.thresholds import Threshold, parse_threshold
from oomlab.workflows.gate.verdict import Check, GateResult

GATE_FILE = "gate.html"


def allowed(check: Check) -> int | None:
    """The largest current value the check's threshold lets pass."""
    if check.threshold == "oom" or check.baseline is None:
        return None
    threshold = parse_threshold(check.threshold)
    if not isinstance(threshold, Threshold):  # a load bound is absolute: no baseline allowance
        return None
    if threshold.percent is not None:
        return int(check.baseline * (1 + threshold.percent / 100))
    return check.baseline + (threshold.bytes or 0)


def regression_figure(check: Check) -> str:
    """One regression as a picture: baseline and current bars, the allowance as the red line."""
    if check.shown is not None:  # a load bound: the run's value against it, no bars
        bound, value = check.shown
        return f"<p><b>{escape(check.task)}</b>: {escape(check.threshold)}: {escape(value)} (bound {escape(bound)})</p>"
    if check.threshold == "oom":
        return f"<p><b>{escape(check.task)}</b>: OOM kills {check.baseline} → {check.current} (new OOM kill)</p>"
    change = check.change_percent
    title = f"{check.task} {check.threshold}: {format_size(check.baseline)} → {format_size(check.current)}"
    if change is not None:
        title += f" ({change:+.1f}%)"
    bars = [
        Bar("baseline", float(check.baseline or 0), f"baseline {format_size(check.baseline)}"),
        Bar("current", float(check.current or 0), f"current {format_size(check.current)}\n{title}", "bad"),
    ]
    return f"<h3>{escape(title)}</h3>" + bars_svg(bars, title, allowed(check), "allowed")


def checks_table(result: GateResult) -> str:
    columns = ["task", "check", "baseline", "current", "change", "verdict"]
    rows = []
    for check in result.checks:
        shown = cells(check)
        change = check.change_percent
        rows.append(
            [
                cell(shown[0]),
                cell(shown[1]),
                cell(shown[2], check.baseline if check.baseline is not None else ""),
                cell(shown[3], check.current if check.current is not None else ""),
                cell(shown[4], change if change is not None else ""),
                cell(shown[5], css="outcome outcome-killed" if check.failed else "outcome outcome-succeeded"),
            ]
        )
    attrs = ['class="regression"' if check.failed else "" for check in result.checks]
    return table(columns, rows, "checks", numeric=["baseline", "current", "change"], row_attrs=attrs)


def sites_section(sites: list[dict[str, Any]] | None) -> str:
    """PROFILE SITES: drawn only when the gate carries profiled allocation sites (`result.sites`, a
    list of {"site", "baseline_bytes", "current_bytes"}); runs without profiles show nothing here."""
    if not sites:
        return ""
    rows = [
        [
            cell(site.get("site", "?")),
            cell(format_size(site.get("baseline_bytes")), site.get("baseline_bytes") or 0),
            cell(format_size(site.get("current_bytes")), site.get("current_bytes") or 0),
            cell(
                format_size((site.get("current_bytes") or 0) - (site.get("baseline_bytes") or 0)),
                (site.get("current_bytes") or 0) - (site.get("baseline_bytes") or 0),
            ),
        ]
        for site in sites
    ]
    body = table(["site", "baseline", "current", "growth"], rows, "sites", numeric=["baseline", "current", "growth"])
    return section("Allocation sites that grew", body, "sites")


def gate_sections(result: GateResult, run_dir: str, run: tuple[RunView, list[Series]] | None) -> list[str]:
    regressions = result.regressions
    figures = "".join(regression_figure(check) for check in regressions) or '<p class="note">no regression</p>'
    summary = cards(
        [
            (str(len(result.checks)), "checks", ""),
            (str(len(regressions)), "regressions", "bad" if regressions else "good"),
            (str(len({c.task for c in regressions})), "tasks regressed", "bad" if regressions else ""),
        ]
        + ([(str(len(result.unfit)), "reasons the run cannot be gated on", "bad")] if result.unfit else [])
    )
    unfit = [f"the run cannot be gated on: {c.detail or c.threshold}" for c in result.unfit]
    notices = "".join(f"<li>{escape(n)}</li>" for n in unfit + result.notices)
    sections = [
        section("Verdict", summary + (f"<ul>{notices}</ul>" if notices else ""), "verdict"),
        section("Regressions", figures, "regressions", "Red line: the largest value the threshold allows."),
        section("Every check", checks_table(result), "checks-section"),
        sites_section(getattr(result, "sites", None)),
    ]
    if run is not None:
        view, series = run
        link = relative_link(run_dir, os.path.join(run_dir, REPORT_FILE), "the run's full report")
        sections.append(section(f"The judged run {view.run_id}", timeline_figure(view, series) + link, "run"))
    return sections


def write_gate_report(result: GateResult, run_dir: str, run: tuple[RunView, list[Series]] | None) -> str:
    html_text = page(
        headline(result),
        f"run {os.path.basename(os.path.abspath(run_dir))}",
        gate_sections(result, run_dir, run),
        FOOTER,
    )
    return write_page(os.path.join(run_dir, GATE_FILE), html_text)
