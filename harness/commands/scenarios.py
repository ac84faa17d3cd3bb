"""`oomlab scenarios`: every built-in scenario, one line each, with its parameters."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from harness.errors import EXIT_OK
from harness.scenario import builtin_names, load_scenario


def register(subparsers) -> None:
    parser = subparsers.add_parser("scenarios", help="list the built-in scenarios and their parameters")
    parser.set_defaults(func=main)


def main(_args) -> int:
    table = Table(show_lines=False)
    for column in ("scenario", "variants", "what it does", "parameters (default)"):
        table.add_column(column)
    for name in builtin_names():
        scenario = load_scenario(name)
        params = ", ".join(f"{p.name}={p.default}" for p in scenario.params)
        table.add_row(name, "/".join(scenario.variants), scenario.description, params)
    Console(soft_wrap=True).print(table)
    return EXIT_OK
