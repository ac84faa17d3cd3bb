"""A run directory's files read back: the probe's JSON lines and the sampler's CSV files (a file
not there reads as empty: a run stopped early wrote none). The sampler's files grow with a run's
duration (100 rows a second per process: a 40-minute run wrote 22 MB), so the curves drawn from them
are read in memory of the picture, not of the file."""

from __future__ import annotations

import csv
from collections.abc import Iterable

from oomlab.probe.events import ProbeLine, decode
from oomlab.record.reading import BoundedLines, open_file


def read_probe(path: str) -> list[ProbeLine]:
    """The probe's lines (BoundedLines: a line past its cap is skipped like a torn one)."""
    try:
        with open_file(path) as handle:
            return [
                record for line in BoundedLines(handle) if line is not None and (record := decode(line)) is not None
            ]
    except FileNotFoundError:
        return []


def csv_rows(path: str) -> list[dict[str, str]]:
    try:
        with open_file(path) as handle:
            return list(csv.DictReader(BoundedLines(handle).text()))
    except FileNotFoundError:
        return []


class Envelope:
    """A curve kept as at most 2 points per time bucket over [first, last]: each bucket's lowest and
    highest in time order, so a peak drawn is a value that was sampled, never smoothed away."""

    def __init__(self, first: float, last: float, buckets: int):
        self.first = first
        self.width = (last - first) / buckets or 1.0
        self.buckets = buckets
        self._low: dict[int, tuple[float, float]] = {}
        self._high: dict[int, tuple[float, float]] = {}

    def add(self, t: float, value: float) -> None:
        bucket = min(max(int((t - self.first) / self.width), 0), self.buckets - 1)
        low = self._low.get(bucket)
        if low is None or value < low[1]:
            self._low[bucket] = (t, value)
        high = self._high.get(bucket)
        if high is None or value > high[1]:
            self._high[bucket] = (t, value)

    def points(self) -> list[tuple[float, float]]:
        kept: list[tuple[float, float]] = []
        for bucket in sorted(self._low):
            kept.extend(sorted({self._low[bucket], self._high[bucket]}))
        return kept


def envelope(
    points: Iterable[tuple[float, float]], first: float, last: float, buckets: int
) -> list[tuple[float, float]]:
    curve = Envelope(first, last, buckets)
    for t, value in points:
        curve.add(t, value)
    return curve.points()


def csv_curves(
    path: str, time: str, value: str, key: str | None = None, buckets: int = 500
) -> dict[str, list[tuple[float, float]]]:
    """`value` against `time` from a sampler CSV, one curve per `key` (all rows in one, keyed "", when
    None), each an Envelope of `buckets`: two passes over the file, the first for the time span."""
    span = _span(_numbers(path, (time, value, key)))
    if span is None:
        return {}
    curves: dict[str, Envelope] = {}
    for t, number, name in _numbers(path, (time, value, key)):
        curve = curves.get(name)
        if curve is None:
            curve = curves[name] = Envelope(span[0], span[1], buckets)
        curve.add(t, number)
    return {name: curve.points() for name, curve in curves.items()}


def _numbers(path: str, columns: tuple[str, str, str | None]) -> Iterable[tuple[float, float, str]]:
    """(time, value, key) of each row whose time and value cells are numbers (blank cells skipped)."""
    time, value, key = columns
    try:
        with open_file(path) as handle:
            rows = csv.reader(BoundedLines(handle).text())
            header = next(rows, [])
            if time not in header or value not in header or (key is not None and key not in header):
                return
            at, of = header.index(time), header.index(value)
            by = header.index(key) if key is not None else None
            for row in rows:
                try:
                    yield float(row[at]), float(row[of]), (row[by] if by is not None else "")
                except (ValueError, IndexError):
                    continue
    except FileNotFoundError:
        return


def _span(rows: Iterable[tuple[float, float, str]]) -> tuple[float, float] | None:
    first = last = None
    for t, _, _ in rows:
        first = t if first is None else min(first, t)
        last = t if last is None else max(last, t)
    return None if first is None or last is None else (first, last)
