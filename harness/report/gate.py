"""The gate's verdict three ways: a terminal table, Markdown for a CI job summary, JUnit XML for CI
test reports (one testcase per task and check, a failure element per regression). The gate
(oomlab.workflows.gate) makes the verdict; this module draws it."""

from __future__ import annotations

import os
from urllib.parse import quote
from xml.etree import ElementTree

from oomlab.config.sizes import format_size
from oomlab.errors import ResultsUnwritable
from oomlab.trust import open_append, results_umask, write_private_atomic
from oomlab.workflows.gate.verdict import Check, GateResult
from rich.console import Console
from rich.table import Table

COLUMNS = ("task", "check", "baseline", "current", "change", "verdict")
# the figures a first run saves, per task name: peak (VmHWM), growth above each task's start, its need
BASELINE_COLUMNS = ("task", "n", "peak", "p95", "growth", "needs", "kills")


DETAIL_IN_TABLE = 40  # characters: a longer detail is printed below the table


def cells(check: Check) -> tuple[str, ...]:
    if check.detail:
        values = ("-", "-", check.detail)
    elif check.shown is not None:  # a load threshold: its bound and the run's value
        values = (check.shown[0], check.shown[1], "-")
    elif check.threshold == "oom":
        values = (f"{check.baseline} kill(s)", f"{check.current} kill(s)", "new OOM kill")
    else:
        change = check.change_percent
        values = (
            format_size(check.baseline),
            format_size(check.current),
            f"{change:+.1f}% ({format_size((check.current or 0) - (check.baseline or 0))})"
            if change is not None
            else "-",
        )
    return (check.task, check.threshold, *values, verdict_word(check))


def verdict_word(check: Check) -> str:
    """A task's failing check is a regression; the run's own (it did not do its work, it cannot be
    the first baseline) is a failure: nothing regressed, there is nothing to gate on."""
    if not check.failed:
        return "ok"
    return "FAILED" if check.on_the_run else "REGRESSION"


def headline(result: GateResult) -> str:
    parts = []
    if unfit := result.unfit:  # first: beside it, a task's regression is a hint, not the verdict
        parts.append(f"failed: the run cannot be gated on ({'; '.join(c.detail or c.threshold for c in unfit)})")
    if regressions := result.regressions:
        parts.append(f"{len(regressions)} regression(s) in {len({c.task for c in regressions})} task(s)")
    if parts:
        return "oomlab gate: " + "; ".join(parts)
    if result.saved:  # the first run: nothing was compared, so nothing "passed"
        bounds = f", {len(result.checks)} absolute bound(s) kept" if result.checks else ""
        return f"oomlab gate: baseline saved to {result.saved}{bounds}; the next run is compared with it"
    return f"oomlab gate: passed ({len(result.checks)} check(s))"


def baseline_rows(result: GateResult) -> list[tuple[str, ...]]:
    """The first run's figures per task name, as saved in the baseline: what the next run is held to."""

    def size(value: int | None) -> str:
        return format_size(value) if value is not None else "-"

    return [
        (name, str(s.n), size(s.max), size(s.p95), size(s.growth_max), size(s.needs_max), str(s.kills))
        for name, s in sorted(result.baseline.items())
    ]


def _plain(columns: tuple[str, ...], rows: list[tuple[str, ...]], left: set[str]) -> list[str]:
    """Rows as plain text under a header row, columns aligned; no lines when there is no row."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in [columns, *rows]) for i in range(len(columns))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(w) if name in left else cell.rjust(w) for name, cell, w in zip(columns, row, widths, strict=True)
        ).rstrip()

    return [line(columns), "  ".join("-" * w for w in widths), *(line(row) for row in rows)]


def table_lines(result: GateResult) -> list[str]:
    """The checks as plain text (a pytest terminal summary); no lines when there is no check."""
    return _plain(COLUMNS, [cells(check) for check in result.checks], {"task", "check", "verdict"})


def baseline_lines(result: GateResult) -> list[str]:
    """The first run's saved figures as plain text; no lines when nothing was saved."""
    return _plain(BASELINE_COLUMNS, baseline_rows(result), {"task"})


def render_terminal(result: GateResult, console: Console) -> None:
    """The checks as a table; a detail too long for its cell (a path and a sentence) is a numbered
    line below it, whole, so a terminal or log never folds it inside the table. On the first run,
    the figures saved as the baseline instead of an empty table of checks."""
    if result.saved:
        saved = Table(title=headline(result), title_justify="left")
        for column in BASELINE_COLUMNS:
            saved.add_column(column, justify="left" if column == "task" else "right")
        for figures in baseline_rows(result):
            saved.add_row(*figures)
        console.print(saved)
    table = Table(title=None if result.saved else headline(result), title_justify="left")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("task", "check", "verdict") else "right")
    long: list[Check] = []
    for check in result.checks:
        row = list(cells(check))
        if check.detail and len(check.detail) > DETAIL_IN_TABLE:
            long.append(check)
            row[4] = f"see note {len(long)}"
        table.add_row(*row, style="red" if check.failed else None)
    if result.checks or not result.saved:
        console.print(table)
    for number, check in enumerate(long, 1):
        console.print(f"note {number}: {check.task} {check.threshold}: {check.detail}")
    for notice in result.notices:
        console.print(f"note: {notice}")


def markdown(result: GateResult, page: str | None = None) -> str:
    """`page`: the gate's HTML report (each regression drawn, the run's timeline), linked for a CI
    job to upload as an artifact beside the summary."""
    lines = [f"### {headline(result)}", ""]
    if result.baseline:
        lines += [*_markdown_table(BASELINE_COLUMNS, baseline_rows(result)), ""]
    if result.checks or not result.saved:
        rows = [cells(check) for check in result.checks]
        rows = [(*row[:-1], f"**{row[-1]}**") if c.failed else row for row, c in zip(rows, result.checks, strict=True)]
        lines += _markdown_table(COLUMNS, rows)
    lines += [""] + [f"- {notice}" for notice in result.notices]
    if page:
        lines += ["", f"Report with each regression drawn: [`{page}`]({quote(page)})"]
    return "\n".join(lines).rstrip() + "\n"


def _markdown_table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]


def junit_xml(result: GateResult) -> str:
    suite = ElementTree.Element(
        "testsuite",
        name="oomlab.gate",
        tests=str(len(result.checks)),
        failures=str(len(result.failed)),
        errors="0",
        skipped="0",
    )
    for check in result.checks:
        case = ElementTree.SubElement(suite, "testcase", classname=f"oomlab.gate.{check.task}", name=check.threshold)
        if check.failed:
            if check.on_the_run:  # nothing was compared: the reason is the message
                failure = ElementTree.SubElement(
                    case, "failure", message=f"{check.task} {check.threshold}: {check.detail}"
                )
                failure.text = f"the run cannot be gated on: {check.detail}"
                continue
            _, _, base, current, change, _ = cells(check)
            failure = ElementTree.SubElement(
                case, "failure", message=f"{check.task} {check.threshold}: {base} -> {current} ({change})"
            )
            failure.text = f"baseline {base}, current {current}, change {change}, threshold {check.threshold}"
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True)


def write_reports(
    result: GateResult, markdown_path: str | None, junit_path: str | None, page: str | None = None
) -> None:
    """The Markdown summary appended (never through a link: oomlab.trust.open_append) and the JUnit
    XML written new through a random O_EXCL temporary file and a rename."""
    text = markdown(result, page)
    for path in filter(None, (markdown_path, os.environ.get("GITHUB_STEP_SUMMARY"))):
        with open_append(path, "Markdown summary") as handle:
            handle.write(text)
    if junit_path:
        try:
            write_private_atomic(junit_path, junit_xml(result), 0o666 & ~results_umask())
        except OSError as exc:
            raise ResultsUnwritable(f"cannot write {junit_path}: {exc.strerror or exc}") from None
