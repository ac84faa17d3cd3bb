"""The console reports print to: the terminal's width on a terminal, wide enough for every column
when the output goes to a file or a CI log (rich would squeeze tables to 80 columns there), and the
width COLUMNS asks for whenever it is set (`COLUMNS=80 oomlab run ... | less`)."""

from __future__ import annotations

import os
from collections.abc import Iterable

from oomlab.record.printable import printable
from rich.console import Console
from rich.segment import Segment

LOG_WIDTH = 200


class SafeConsole(Console):
    """A Console that shows control characters in what it prints escaped (rich passes ESC through):
    reports print task names and messages from records another user could have written. Its own
    styling is added after this, so colours stay."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            segment if segment.control else Segment(printable(segment.text), segment.style) for segment in buffer
        )


def report_console() -> Console:
    # emoji=False: a task named `:fire:` prints as named, and rich's table of emoji codes (~0.9 MiB)
    # stays out of every run's process
    console = SafeConsole(soft_wrap=True, emoji=False)
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        console.width = int(columns)
    elif not console.is_terminal:
        console.width = LOG_WIDTH
    return console
