"""The console reports print to: the terminal's width on a terminal, wide enough for every column
when the output goes to a file or a CI log (rich would squeeze tables to 80 columns there)."""

from __future__ import annotations

from rich.console import Console

LOG_WIDTH = 200


def report_console() -> Console:
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console.width = LOG_WIDTH
    return console
