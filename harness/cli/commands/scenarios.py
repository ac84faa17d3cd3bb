"""`oomlab scenarios [NAME]`: every built-in scenario in a line each, or one in full (its variants
with what each changes, its parameters with their help, its defaults)."""

from __future__ import annotations

from oomlab.config.scenario import Scenario, builtin_names, load_scenario
from oomlab.errors import EXIT_OK, ExtraMissing
from oomlab.report.console import report_console
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def register(subparsers) -> None:
    parser = subparsers.add_parser("scenarios", help="list the built-in scenarios, or show one in full")
    parser.add_argument("name", nargs="?", help="a built-in scenario name or a scenario .py file")
    parser.set_defaults(func=main)


def main(args) -> int:
    console = report_console()
    if args.name:
        show(load_scenario(args.name), console)
        return EXIT_OK
    table = Table(show_lines=False)
    for column in ("scenario", "variants", "what it does", "parameters (default)"):
        table.add_column(column)
    for name in builtin_names():
        try:
            scenario = load_scenario(name)
        except ExtraMissing as missing:  # listed all the same, with what it needs
            table.add_row(name, "-", escape(f"needs {missing.module}: {missing.install}"), "")
            continue
        params = ", ".join(f"{p.name}={p.default}" for p in scenario.params)
        table.add_row(name, "/".join(scenario.variants), scenario.description, params)
    console.print(table)
    return EXIT_OK


def show(scenario: Scenario, console: Console) -> None:
    console.print(f"[bold]{scenario.name}[/bold]: {scenario.description}")
    defaults = ", ".join(f"{key}={value}" for key, value in scenario.defaults.items())
    if defaults:
        console.print(f"defaults: {defaults}")
    variants = Table(title="variants (--variant; --compare runs them all)", title_justify="left")
    for column in ("variant", "what it does", "settings"):
        variants.add_column(column)
    for variant in scenario.variants.values():
        settings = {**variant.defaults, **variant.celery_conf}
        variants.add_row(variant.name, variant.description, ", ".join(f"{k}={v}" for k, v in settings.items()))
    console.print(variants)
    if scenario.params:
        params = Table(title="parameters (--param name=value)", title_justify="left")
        for column in ("name", "default", "what it sets"):
            params.add_column(column)
        for param in scenario.params:
            params.add_row(param.name, str(param.default), param.help)
        console.print(params)
