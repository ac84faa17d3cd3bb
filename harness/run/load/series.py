"""A per-second series in bounded memory: one bucket per second until MAX_POINTS, then neighbouring
buckets merge and the width doubles, so an hour or a week costs the same few hundred numbers. The bound
is what keeps a checkpoint flat: run.json carries each series and is written every second (at 3,600
points a series, a million-task run's checkpoint took 30 ms and grew with the run)."""

from __future__ import annotations

from dataclasses import dataclass, field

from oomlab.record.load import Points

MAX_POINTS = 600  # ten minutes at one second, an hour at eight seconds, a day at about four minutes


@dataclass
class Series:
    kind: str = "count"  # count: buckets add up (tasks per bucket) | gauge: a bucket keeps its highest value
    width: float = 1.0
    values: list[float] = field(default_factory=list)

    def add(self, offset: float, amount: float = 1.0) -> None:
        """`amount` at `offset` seconds after the start (count), or the gauge's value then."""
        index = self._index(offset)
        if self.kind == "count":
            self.values[index] += amount
        else:
            self.values[index] = max(self.values[index], amount)

    def _index(self, offset: float) -> int:
        index = max(0, int(offset / self.width))
        while index >= MAX_POINTS:
            self._coarsen()
            index = max(0, int(offset / self.width))
        if index >= len(self.values):
            self.values.extend([0.0] * (index + 1 - len(self.values)))
        return index

    def values_at(self, width: float) -> list[float]:
        """The buckets merged to `width`, a power-of-two multiple of this series' own."""
        step = max(1, round(width / self.width))
        merge = sum if self.kind == "count" else max
        return [merge(self.values[i : i + step]) for i in range(0, len(self.values), step)]

    def _coarsen(self) -> None:
        self.values = self.values_at(self.width * 2)
        self.width *= 2

    def per_second(self) -> list[float]:
        """Counts as rates (per second of the bucket), gauges as they are."""
        if self.kind == "count":
            return [round(value / self.width, 3) for value in self.values]
        return list(self.values)

    def points(self) -> Points:
        return Points(self.width, self.per_second())
