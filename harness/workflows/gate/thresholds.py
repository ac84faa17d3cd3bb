"""`STAT:N%` (pytest-benchmark's grammar: fail when STAT grew by more than N percent),
`STAT:+SIZE` or `STAT:SIZE` (fail when it grew by more than SIZE), and both, `STAT:N%,+SIZE` (fail
only when it grew by more than N percent AND more than SIZE: a percentage of a small figure is
noise, a floor alone misses a big task's growth). STAT one of peak (= max), min, mean, p50, p95,
p99, growth (each task's growth above its start, its tree's where exact; = growth_max), growth_p50,
growth_p95, needs (what each task needs above its start: anon + shmem + kernel, page cache apart;
sampled; = needs_max), needs_p50, needs_p95, and memory by kind KIND_end / KIND_at_kill (anon, file, shmem; harness/record/kinds.py):
compared with a baseline.

Load statistics are absolute, k6-style: `METRIC OP VALUE`, e.g. `queue_wait.p95<2s`,
`throughput>=40/s`, `oom_kills==0`, OP one of < <= > >= == !=, METRIC one of
queue_wait|run_time|end_to_end .p50|p90|p95|p99|max (seconds: 2s, 250ms), throughput or offered
(tasks/s: 40/s), oom_kills, oom_kills_per_1000, succeeded, failed, killed (counts), peak_rss
.p50|p90|p95|p99|max (a size: 200MiB). They need no baseline."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from oomlab.config.durations import format_seconds
from oomlab.config.sizes import format_size, parse_size
from oomlab.errors import BadInput
from oomlab.record.load import LoadSection, NameFigures
from oomlab.workflows.gate.stats import STATS


@dataclass(frozen=True)
class Threshold:
    stat: str
    percent: float | None = None
    bytes: int | None = None

    def __str__(self) -> str:
        parts = [f"{self.percent:g}%"] if self.percent is not None else []
        parts += [f"+{format_size(self.bytes)}"] if self.bytes is not None else []
        return f"{self.stat}:{','.join(parts)}"

    def exceeded(self, base: int, current: int) -> bool:
        """Every bound given is crossed (one alone when only one is given)."""
        growth = current - base
        over_percent = self.percent is None or (
            (base > 0 and growth > base * self.percent / 100) or (base == 0 and current > 0)
        )
        return over_percent and (self.bytes is None or growth > self.bytes)


def parse_threshold(text: str) -> Threshold | LoadThreshold:
    if _LOAD.match(text):
        return parse_load_threshold(text)
    stat, sep, amounts = text.strip().partition(":")
    if not sep or stat not in STATS or not amounts:
        raise BadInput(
            f"--fail takes STAT:N%, STAT:+SIZE or STAT:N%,+SIZE with STAT one of {', '.join(STATS)}, not {text!r}"
        )
    percent: float | None = None
    size: int | None = None
    for amount in (part.strip() for part in amounts.split(",")):
        if amount.endswith("%") and percent is None:
            try:
                percent = float(amount[:-1])
            except ValueError:
                raise BadInput(f"--fail {text!r}: {amount!r} is not a percentage") from None
            if not math.isfinite(percent) or percent < 0:
                raise BadInput(f"--fail {text!r}: a threshold is a finite percentage, zero or more")
        elif not amount.endswith("%") and size is None and amount:
            if re.fullmatch(r"\+?[0-9.]+", amount):  # a bare number: a percentage or a size, which?
                number = amount.lstrip("+")
                raise BadInput(f"--fail {text!r}: {amount} has no unit: write {stat}:{number}% or {stat}:+{number}MiB")
            size = parse_size(amount.lstrip("+"))
        else:
            raise BadInput(f"--fail {text!r}: give at most one percentage and one size, e.g. growth:10%,+2MiB")
    return Threshold(stat, percent=percent, bytes=size)


OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
LATENCIES = ("queue_wait", "run_time", "end_to_end")
LOAD_STATS = ("p50", "p90", "p95", "p99", "max")
RATES = ("throughput", "offered")  # achieved_per_s, offered_per_s
COUNTS = ("oom_kills", "oom_kills_per_1000", "succeeded", "failed", "killed")
_LOAD = re.compile(r"^\s*([a-z_0-9]+)(?:\.([a-z0-9]+))?\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")
_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")
_PER_SECOND = re.compile(r"^(\d+(?:\.\d+)?)(?:/s)?$")
_GRAMMAR = (
    "a load threshold is METRIC OP VALUE, e.g. queue_wait.p95<2s, throughput>=40/s or oom_kills==0 "
    f"(METRIC: {'|'.join(LATENCIES)}.{'|'.join(LOAD_STATS)}, {', '.join(RATES)}, {', '.join(COUNTS)}, "
    "peak_rss.STAT)"
)


@dataclass(frozen=True)
class LoadThreshold:
    """An absolute bound on a load statistic of the current run (no baseline)."""

    metric: str  # queue_wait | run_time | end_to_end | peak_rss | throughput | offered | a count
    stat: str | None  # p50 ... max for latencies and peak_rss
    op: str
    value: float
    text: str

    def __str__(self) -> str:
        return self.text

    def current(self, figures: NameFigures) -> float | None:
        """This statistic in a `load` section (run.json's, or one task name's under `by_task`: a name
        has its killed count, not the run's OOM kills, and no rate of kills)."""
        value: int | float | None
        if self.metric in LATENCIES:
            value = getattr(figures.latency, self.metric).at(self.stat or "")
        elif self.metric == "peak_rss":
            value = figures.peak_rss_bytes.at(self.stat or "")
        elif self.metric == "throughput":
            value = figures.achieved_per_s
        elif self.metric == "offered":
            value = figures.offered_per_s
        elif self.metric == "oom_kills":
            value = figures.oom_kills if isinstance(figures, LoadSection) else figures.counts.killed
        elif self.metric == "oom_kills_per_1000":
            value = figures.oom_kills_per_1000_tasks if isinstance(figures, LoadSection) else None
        else:
            value = getattr(figures.counts, self.metric)
        return None if value is None else float(value)

    def holds(self, current: float) -> bool:
        return OPERATORS[self.op](current, self.value)

    def show(self, value: float | None) -> str:
        """A value of this metric as the user wrote its bound."""
        if value is None:
            return "-"
        if self.metric in LATENCIES:
            return format_seconds(value)
        if self.metric == "peak_rss":
            return format_size(value)
        if self.metric in RATES:
            return f"{value:.1f}/s"
        return f"{value:g}"


def parse_load_threshold(text: str) -> LoadThreshold:
    match = _LOAD.match(text)
    if not match:
        raise BadInput(f"--fail {text!r}: {_GRAMMAR}")
    metric, stat, op, amount = match.groups()
    if metric in LATENCIES or metric == "peak_rss":
        if stat not in LOAD_STATS:
            raise BadInput(f"--fail {text!r}: {metric} takes .{'|.'.join(LOAD_STATS)}, e.g. {metric}.p95")
    elif metric in RATES or metric in COUNTS:
        if stat is not None:
            raise BadInput(f"--fail {text!r}: {metric} takes no .{stat}; {_GRAMMAR}")
    else:
        raise BadInput(f"--fail {text!r}: unknown metric {metric!r}; {_GRAMMAR}")
    return LoadThreshold(metric, stat, op, _load_value(metric, amount, text), text.strip())


def _load_value(metric: str, amount: str, text: str) -> float:
    if metric in LATENCIES:
        match = _SECONDS.match(amount)
        if not match:
            raise BadInput(f"--fail {text!r}: {amount!r} is not a duration such as 2s or 250ms")
        return float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match.group(2)]
    if metric == "peak_rss":
        return float(parse_size(amount))
    match = _PER_SECOND.match(amount) if metric in RATES else re.match(r"^\d+(?:\.\d+)?$", amount)
    if not match:
        raise BadInput(f"--fail {text!r}: {amount!r} is not a {'rate such as 40/s' if metric in RATES else 'number'}")
    return float(match.group(1) if metric in RATES else match.group(0))
