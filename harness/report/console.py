"""The console reports print to: the terminal's width on a terminal, wide enough for every column
when the output goes to a file or a CI log (rich would squeeze tables to 80 columns there), and the
width COLUMNS asks for whenever it is set (`COLUMNS=80 oomlab run ... | less`)."""

from __future__ import annotations

import os

from rich.console import Console

LOG_WIDTH = 200


def report_console() -> Console:
    console = Console(soft_wrap=True)
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        console.width = int(columns)
    elif not console.is_terminal:
        console.width = LOG_WIDTH
    return console
