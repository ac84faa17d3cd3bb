"""How a detector's latency after a kill is shown, on the terminal and in HTML alike.

The kill's time is the kernel log's stamp, or inferred when there is none, so a detector can appear
to see the kill a hair before it: that is a bound, not a measured negative latency, and is shown as
one ("≤0 ms"); the raw figure stays in run.json."""

from __future__ import annotations

from collections.abc import Callable

AT_ONCE = "≤0 ms"


def latency_text(seconds: float | None, fmt: Callable[[float | None], str]) -> str:
    return AT_ONCE if seconds is not None and seconds < 0 else fmt(seconds)
