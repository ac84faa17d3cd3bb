"""Exact figures from whole numbers: the one quantile rule of oomlab (nearest rank: a value that was
really measured) and `ExactCounts`, which keeps it in memory bounded by the number of distinct values.
Here in the record so the digest, the gate and the report fold runs with it without the assembly."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TypeVar

from oomlab.record.schema import Spread

T = TypeVar("T")


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
