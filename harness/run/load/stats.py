"""Load statistics per task name and in total, in fixed memory: counters, histograms and per-second
series, never a list of tasks. Fed by the load driver as tasks are sent, start and become final, or
after the fact from a run's task records (a plan run, a pytest session)."""

from __future__ import annotations

from dataclasses import dataclass, field

from oomlab.record.histogram import LogHistogram
from oomlab.record.load import Counts, Latency, NameFigures, NameSeries
from oomlab.run.load.series import Series

LATENCIES = ("queue_wait", "run_time", "end_to_end")
COUNTS = ("sent", "started", "succeeded", "failed", "killed", "unfinished", "sent_by_tasks")


@dataclass
class NameStats:
    """One task name's figures; times are seconds after the load began."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    latency: dict[str, LogHistogram] = field(default_factory=lambda: {name: LogHistogram() for name in LATENCIES})
    peak_rss: LogHistogram = field(default_factory=LogHistogram)
    offered: Series = field(default_factory=Series)
    achieved: Series = field(default_factory=Series)
    first_sent: float | None = None
    last_sent: float | None = None
    first_completed: float | None = None
    last_completed: float | None = None

    def sent(self, at: float) -> None:
        self.counts["sent"] += 1
        self.first_sent = _least(self.first_sent, at)
        self.last_sent = _most(self.last_sent, at)
        self.offered.add(at)

    def final(self, outcome: str, at: float, latencies: dict[str, float | None], peak: int | None) -> None:
        """A task became final: `outcome` succeeded | failed | killed | anything else (unfinished)."""
        self.counts[outcome if outcome in ("succeeded", "failed", "killed") else "unfinished"] += 1
        for name, value in latencies.items():
            if value is not None:
                self.latency[name].record(value)
        if latencies.get("run_time") is not None:
            self.counts["started"] += 1
        if peak is not None:
            self.peak_rss.record(peak)
        if outcome in ("succeeded", "failed"):
            self.achieved.add(at)
            self.first_completed = _least(self.first_completed, at)
            self.last_completed = _most(self.last_completed, at)

    def merge(self, other: NameStats) -> None:
        for key, count in other.counts.items():
            self.counts[key] += count
        for name, histogram in other.latency.items():
            self.latency[name].merge(histogram)
        self.peak_rss.merge(other.peak_rss)
        for mine, theirs in ((self.offered, other.offered), (self.achieved, other.achieved)):
            _merge_series(mine, theirs)
        self.first_sent = _least(self.first_sent, other.first_sent)
        self.last_sent = _most(self.last_sent, other.last_sent)
        self.first_completed = _least(self.first_completed, other.first_completed)
        self.last_completed = _most(self.last_completed, other.last_completed)

    @property
    def offered_per_s(self) -> float | None:
        """Tasks sent per second between the first and the last send (n-1 intervals)."""
        sent = self.counts["sent"]
        if sent < 2 or self.first_sent is None or self.last_sent is None or self.last_sent <= self.first_sent:
            return None
        return (sent - 1) / (self.last_sent - self.first_sent)

    @property
    def achieved_per_s(self) -> float | None:
        """Tasks run to the end (succeeded or failed) per second between the first and the last end:
        the same n-1 intervals as offered, so a worker that keeps up achieves what was offered."""
        done = self.counts["succeeded"] + self.counts["failed"]
        first, last = self.first_completed, self.last_completed
        if done < 2 or first is None or last is None or last <= first:
            return None
        return (done - 1) / (last - first)

    def figures(self) -> NameFigures:
        """run.json's figures for this name (or for all, from total_of)."""
        return NameFigures(
            counts=Counts(**self.counts),
            offered_per_s=_round(self.offered_per_s),
            achieved_per_s=_round(self.achieved_per_s),
            latency=Latency(**{name: h.summary() for name, h in self.latency.items()}),
            peak_rss_bytes=self.peak_rss.summary(digits=None),
            series=NameSeries(self.offered.points(), self.achieved.points()),
        )


def total_of(by_name: dict[str, NameStats]) -> NameStats:
    total = NameStats()
    for stats in by_name.values():
        total.merge(stats)
    return total


def _merge_series(mine: Series, theirs: Series) -> None:
    for index, value in enumerate(theirs.values):
        if value:
            mine.add((index + 0.5) * theirs.width, value)


def _least(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _most(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
