"""A log-bucketed histogram in fixed memory (DDSketch's mapping): every quantile it reports is within
RELATIVE_ERROR of a value that was really recorded, min and max are exact, and two merge exactly.

Buckets are powers of gamma = (1 + e) / (1 - e); a value v falls in bucket ceil(log_gamma v) and is
reported as the bucket's midpoint 2·gamma^i / (gamma + 1), at most e away from v relatively. Values
from 1 µs to 1 day take at most ~1,300 buckets at e = 1 %, whatever the number of values.
Chosen over the hdrhistogram package: no dependency, a stated relative error rather than
significant digits, and a recording cost of a log and a dict update (~0.5 µs, bench/load_cost.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from oomlab.record.load import Quantiles

RELATIVE_ERROR = 0.01
QUANTILES = (("p50", 0.50), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99))


@dataclass
class LogHistogram:
    relative_error: float = RELATIVE_ERROR
    counts: dict[int, int] = field(default_factory=dict)
    zeros: int = 0  # values <= 0 (a clock tie), kept apart from the log buckets
    n: int = 0
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        self._gamma = (1 + self.relative_error) / (1 - self.relative_error)
        self._inv_log_gamma = 1 / math.log(self._gamma)

    def record(self, value: float) -> None:
        self.n += 1
        if self.max is None or value > self.max:
            self.max = value
        if self.min is None or value < self.min:
            self.min = value
        if value <= 0:
            self.zeros += 1
            return
        index = math.ceil(math.log(value) * self._inv_log_gamma)
        self.counts[index] = self.counts.get(index, 0) + 1

    def merge(self, other: LogHistogram) -> None:
        for index, count in other.counts.items():
            self.counts[index] = self.counts.get(index, 0) + count
        self.zeros += other.zeros
        self.n += other.n
        for value in (other.min, other.max):
            if value is not None:
                self.min = value if self.min is None else min(self.min, value)
                self.max = value if self.max is None else max(self.max, value)

    def quantile(self, q: float) -> float | None:
        """Nearest rank: the recorded value at rank ceil(q·n), within the relative error (the exact
        max for the top rank)."""
        return self._quantile_sorted(sorted(self.counts), q)

    def summary(self, digits: int | None = 6) -> Quantiles:
        """{p50, p90, p95, p99, max, n}, the run.json form: seconds rounded to `digits` places, or
        whole numbers (bytes) when `digits` is None."""
        ordered = sorted(self.counts)
        figures = {name: self._quantile_sorted(ordered, q) for name, q in QUANTILES}

        def rounded(value: float | None) -> int | float | None:
            return None if value is None else round(value) if digits is None else round(value, digits)

        return Quantiles(**{name: rounded(v) for name, v in figures.items()}, max=rounded(self.max), n=self.n)

    def _quantile_sorted(self, ordered: list[int], q: float) -> float | None:
        if self.n == 0:
            return None
        rank = max(1, math.ceil(q * self.n))
        if rank >= self.n:
            return self.max
        seen = self.zeros
        if rank <= seen:
            return min(self.min or 0.0, 0.0)
        for index in ordered:
            seen += self.counts[index]
            if seen >= rank:
                value = 2 * self._gamma**index / (self._gamma + 1)
                return min(max(value, self.min or value), self.max or value)
        return self.max
