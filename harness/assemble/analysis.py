"""Figures over a run's record: outcome counts, exact-peak quantiles, the group against its limit."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TypeVar

from oomlab.assemble.outcomes import OUTCOMES
from oomlab.record.schema import KillRecord, ProcessRecord, Spread, Summary, TaskRecord

T = TypeVar("T")
EX_RECYCLE = 155  # billiard: a child that exits after worker_max_tasks/memory_per_child


def nearest_rank(ordered: Sequence[T], q: float) -> T:
    """The q-quantile (0 < q <= 1) of sorted values by nearest rank: a value that was really
    measured, never an interpolation. The one quantile rule of oomlab: run, gate and bench agree."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class ExactCounts:
    """Whole numbers (bytes) counted by value: every figure exact, quantiles by `nearest_rank`'s rule,
    in memory bounded by the number of distinct values rather than of values. Exact peaks are whole
    pages, so a name's peaks take at most limit / 4 KiB entries however many tasks a run streamed."""

    __slots__ = ("counts", "n", "total")

    def __init__(self, values: Iterable[int] = ()) -> None:
        self.counts: Counter[int] = Counter()
        self.n = self.total = 0
        for value in values:
            self.add(value)

    def add(self, value: int) -> None:
        self.counts[value] += 1
        self.n += 1
        self.total += value

    def merge(self, other: ExactCounts) -> None:
        self.counts.update(other.counts)
        self.n += other.n
        self.total += other.total

    def quantiles(self, *qs: float) -> list[int]:
        """Each q-quantile (0 < q <= 1) by nearest rank, in one walk over the sorted values."""
        if not self.n:
            raise ValueError("no values")
        ranks = [max(1, math.ceil(q * self.n)) for q in qs]
        found: dict[int, int] = {}
        seen = 0
        for value in sorted(self.counts):
            seen += self.counts[value]
            for rank in ranks:
                if rank not in found and seen >= rank:
                    found[rank] = value
            if len(found) == len(set(ranks)):
                break
        return [found[rank] for rank in ranks]

    @property
    def min(self) -> int | None:
        return min(self.counts) if self.counts else None

    @property
    def max(self) -> int | None:
        return max(self.counts) if self.counts else None

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    def spread(self) -> Spread:
        if not self.n:
            return Spread()
        p50, p95 = self.quantiles(0.5, 0.95)
        return Spread(p50=p50, p95=p95, max=self.max, n=self.n)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by nearest rank; None for no values."""
    return nearest_rank(sorted(values), q / 100) if values else None


def spread(values: Sequence[float]) -> Spread:
    ordered = sorted(values)
    if not ordered:
        return Spread()
    return Spread(p50=nearest_rank(ordered, 0.5), p95=nearest_rank(ordered, 0.95), max=ordered[-1], n=len(ordered))


def summarize(tasks: list[TaskRecord], kills: list[KillRecord], limit: int, group_peak: int | None) -> Summary:
    counts = Counter(task.outcome for task in tasks)
    exact = [t for t in tasks if t.peak_is_exact and t.peak_rss_bytes is not None]
    latencies: dict[str, list[float]] = {}
    for kill in kills:
        for name, seconds in kill.detected.items():
            latencies.setdefault(name, []).append(seconds)
    return Summary(
        outcomes={name: counts.get(name, 0) for name in OUTCOMES},
        tasks=len(tasks),
        peak_rss_bytes=spread([t.peak_rss_bytes for t in exact if t.peak_rss_bytes is not None]),
        # every task with a figure, killed ones at the RSS the kernel reported at their kill
        peak_rss_all_bytes=spread([t.peak_rss_bytes for t in tasks if t.peak_rss_bytes is not None]),
        peak_above_start_bytes=spread(
            [t.peak_above_start_bytes for t in exact if t.peak_above_start_bytes is not None]
        ),
        traced_peak_bytes=spread([t.traced_peak_bytes for t in exact if t.traced_peak_bytes is not None]),
        group_peak_bytes=group_peak,
        limit_bytes=limit,
        group_peak_fraction=round(group_peak / limit, 4) if group_peak else None,
        kills=len(kills),
        detection_seconds={name: spread(values) for name, values in sorted(latencies.items())},
    )


def summarize_processes(processes: list[ProcessRecord], summary: Summary) -> None:
    """Per-process figures: the main process's exact peak, how much each child came to own (a forked
    child starts with next to no private pages, so its USS is its growth since the fork: copy-on-write
    inflation shows here), and children recycled by Celery."""
    main = next((p for p in processes if p.role == "main"), None)
    children = [p for p in processes if p.role == "child"]
    growth = [p.max_uss_bytes for p in children if p.max_uss_bytes is not None]
    summary.main_peak_rss_bytes = main.peak_rss_bytes if main else None
    summary.child_uss_bytes = spread(growth)
    summary.child_pss_bytes = spread([p.max_pss_bytes for p in children if p.max_pss_bytes is not None])
    summary.children = len(children)
    summary.children_recycled = sum(1 for p in children if p.exit_code == EX_RECYCLE)
