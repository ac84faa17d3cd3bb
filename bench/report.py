"""Every benchmark prints one table with its target beside the measured figure and saves its figures
as JSON under results/bench/."""

from __future__ import annotations

import os
import time

from oomlab.record.schema import write_json_atomic
from oomlab.record.typed_json import to_json
from oomlab.report.console import report_console
from rich.console import Console
from rich.table import Table

RESULTS = os.path.join("results", "bench")


console = report_console  # a table keeps every column in a file or CI log too


def table(title: str, columns: list[str], rows: list[list], out: Console) -> None:
    view = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        view.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        view.add_row(*[str(cell) for cell in row])
    out.print(view)


def target(out: Console, text: str, met: bool | None) -> None:
    verdict = "[green]met[/green]" if met else "[red]missed[/red]" if met is False else "[yellow]n/a[/yellow]"
    out.print(f"target: {text} — {verdict}")


def save(name: str, data: dict) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    write_json_atomic(path, to_json({"benchmark": name, **data}))  # what it printed: dataclasses as plain JSON
    return path


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} %"


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"
