"""`oomlab gate --baseline PATH --current RUN_DIR --fail peak:10%`: the CI gate on task memory (and on
load bounds such as queue_wait.p95<2s, which need no baseline)."""

from __future__ import annotations

from oomlab.errors import EXIT_OK, EXIT_REGRESSION
from oomlab.report.console import report_console
from oomlab.report.gate import render_terminal, write_reports
from oomlab.report.html import write_gate
from oomlab.workflows.gate.flow import gate
from oomlab.workflows.gate.runs import gated_runs
from oomlab.workflows.gate.thresholds import parse_threshold


def register(subparsers) -> None:
    parser = subparsers.add_parser("gate", help="fail when task memory grew past a threshold against a baseline")
    parser.add_argument(
        "--baseline",
        metavar="PATH",
        help="baseline JSON (`oomlab baseline save`); if missing, this run becomes it when it keeps every "
        "bound; not needed when every --fail bound is an absolute load bound",
    )
    parser.add_argument("--current", required=True, metavar="RUN_DIR", help="the run directory to check")
    parser.add_argument(
        "--fail",
        action="append",
        default=[],
        metavar="STAT:N%|STAT:+SIZE",
        help="e.g. peak:10%%, p95:5%%, peak:+32MiB against the baseline, or load bounds such as "
        "queue_wait.p95<2s, throughput>=40/s, oom_kills==0 (repeatable; default: [tool.oomlab.gate] "
        "in pyproject.toml, else growth:10%%,+2MiB)",
    )
    parser.add_argument("--pyproject", default="pyproject.toml", help="where [tool.oomlab.gate] is read from")
    parser.add_argument(
        "--markdown", metavar="PATH", help="append a Markdown summary (also to $GITHUB_STEP_SUMMARY when set)"
    )
    parser.add_argument("--junit", metavar="PATH", help="write JUnit XML")
    parser.set_defaults(func=main)


def main(args) -> int:
    for text in args.fail:  # a typo in a threshold is reported before any file is read
        parse_threshold(text)
    runs = gated_runs([args.current])
    result = gate(
        args.baseline,
        runs.stats,
        runs.source,
        args.fail,
        args.pyproject,
        runs.refusal,
        load=runs.load,
        facts=runs.facts,
    )
    render_terminal(result, report_console())
    page = write_gate(result, args.current)
    print(f"report: {page}", flush=True)
    write_reports(result, args.markdown, args.junit, page)
    return EXIT_REGRESSION if result.failed else EXIT_OK
