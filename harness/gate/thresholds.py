"""`STAT:N%` (pytest-benchmark's grammar: fail when STAT grew by more than N percent) and
`STAT:+SIZE` or `STAT:SIZE` (fail when it grew by more than SIZE), STAT one of peak (= max), min,
mean, p50, p95, p99."""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.errors import BadInput
from harness.gate.stats import STATS
from harness.sizes import format_size, parse_size


@dataclass(frozen=True)
class Threshold:
    stat: str
    percent: float | None = None
    bytes: int | None = None

    def __str__(self) -> str:
        return (
            f"{self.stat}:{self.percent:g}%" if self.percent is not None else f"{self.stat}:+{format_size(self.bytes)}"
        )

    def exceeded(self, base: int, current: int) -> bool:
        growth = current - base
        if self.percent is not None:
            return (base > 0 and growth > base * self.percent / 100) or (base == 0 and current > 0)
        return self.bytes is not None and growth > self.bytes


def parse_threshold(text: str) -> Threshold:
    stat, sep, amount = text.strip().partition(":")
    if not sep or stat not in STATS or not amount:
        raise BadInput(f"--fail takes STAT:N% or STAT:+SIZE with STAT one of {', '.join(STATS)}, not {text!r}")
    if amount.endswith("%"):
        try:
            percent = float(amount[:-1])
        except ValueError:
            raise BadInput(f"--fail {text!r}: {amount!r} is not a percentage") from None
        if not math.isfinite(percent) or percent < 0:
            raise BadInput(f"--fail {text!r}: a threshold is a finite percentage, zero or more")
        return Threshold(stat, percent=percent)
    return Threshold(stat, bytes=parse_size(amount.lstrip("+")))
