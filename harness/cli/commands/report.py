"""`oomlab report PATH`: (re)build the HTML page of a run, lab, comparison or recommendation from
its saved record alone (a report never re-measures); prints the page's path."""

from __future__ import annotations

import argparse

from oomlab.errors import EXIT_OK
from oomlab.report.html import build_report, show_report


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="build the HTML report of a run, lab, comparison or recommendation")
    parser.add_argument(
        "path",
        metavar="PATH",
        help="a run directory (run.json), a lab directory (lab.json), or a compare-*.json / recommend-*.json file",
    )
    parser.add_argument("--open", action="store_true", help="open the page in a browser afterwards")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    show_report(build_report(args.path), args.open)
    return EXIT_OK
