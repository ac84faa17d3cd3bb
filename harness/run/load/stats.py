"""Load statistics per task name and in total, in fixed memory: counters, histograms and per-second
series, never a list of tasks. Fed by the load driver as tasks are sent, start and become final, or
after the fact from a run's task records (a plan run, a pytest session)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from oomlab.record.histogram import LogHistogram
from oomlab.record.load import Counts, Latency, NameFigures, NameSeries
from oomlab.record.stream import TaskLine
from oomlab.run.load.series import Series

LATENCIES = ("queue_wait", "run_time", "end_to_end")
COUNTS = ("sent", "started", "succeeded", "failed", "killed", "unfinished", "sent_by_tasks")


@dataclass
class NameStats:
    """One task name's figures; times are seconds after the load began."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    latency: dict[str, LogHistogram] = field(default_factory=lambda: {name: LogHistogram() for name in LATENCIES})
    peak_rss: LogHistogram = field(default_factory=LogHistogram)
    # above each task's start: exact pool-process peaks, exact tree peaks, needs (sampled), page cache
    above_start: LogHistogram = field(default_factory=LogHistogram)
    tree_above_start: LogHistogram = field(default_factory=LogHistogram)
    needs: LogHistogram = field(default_factory=LogHistogram)
    page_cache: LogHistogram = field(default_factory=LogHistogram)
    failures: Counter[str] = field(default_factory=Counter)  # by exception type: as many as there are types
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

    def final(
        self,
        outcome: str,
        at: float,
        latencies: dict[str, float | None],
        peak: int | None,
        line: TaskLine | None = None,
    ) -> None:
        """A task became final: `outcome` succeeded | failed | killed | anything else (unfinished);
        `line` its tasks.jsonl line, whose memory figures above its start are counted."""
        if line is not None:
            self._memory(line)
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

    def _memory(self, line: TaskLine) -> None:
        if line.peak_is_exact and line.peak_above_start_bytes is not None:
            self.above_start.record(line.peak_above_start_bytes)
        if line.tree_peak_is_exact and line.tree_peak_above_start_bytes is not None:
            self.tree_above_start.record(line.tree_peak_above_start_bytes)
        if line.needs_above_start_bytes is not None:
            self.needs.record(line.needs_above_start_bytes)
        if line.page_cache_above_start_bytes is not None:
            self.page_cache.record(line.page_cache_above_start_bytes)
        if line.outcome == "failed":
            self.failures[(line.exception or "?").partition(":")[0]] += 1

    def merge(self, other: NameStats) -> None:
        for key, count in other.counts.items():
            self.counts[key] += count
        for name, histogram in other.latency.items():
            self.latency[name].merge(histogram)
        for mine_h, theirs_h in (
            (self.peak_rss, other.peak_rss),
            (self.above_start, other.above_start),
            (self.tree_above_start, other.tree_above_start),
            (self.needs, other.needs),
            (self.page_cache, other.page_cache),
        ):
            mine_h.merge(theirs_h)
        self.failures.update(other.failures)
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
            peak_above_start_bytes=self.above_start.summary(digits=None),
            tree_peak_above_start_bytes=self.tree_above_start.summary(digits=None),
            needs_above_start_bytes=self.needs.summary(digits=None),
            page_cache_above_start_bytes=self.page_cache.summary(digits=None),
            failures=dict(self.failures.most_common()),
        )


def total_of(by_name: dict[str, NameStats]) -> NameStats:
    total = NameStats()
    for stats in by_name.values():
        total.merge(stats)
    return total


def _merge_series(mine: Series, theirs: Series) -> None:
    """`theirs` added into `mine` (both counts). At a checkpoint every name's series is merged into the
    total: buckets of one width add up as they are, with no per-bucket rescaling."""
    if not mine.values:
        mine.width = theirs.width
    if mine.width == theirs.width:
        if len(mine.values) < len(theirs.values):
            mine.values.extend([0.0] * (len(theirs.values) - len(mine.values)))
        for index, value in enumerate(theirs.values):
            mine.values[index] += value
        return
    for index, value in enumerate(theirs.values):
        if value:
            mine.add((index + 0.5) * theirs.width, value)


def _least(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _most(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
