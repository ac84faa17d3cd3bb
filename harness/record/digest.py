"""What a run's tasks add up to, folded in one pass in fixed memory: per task name the outcomes, the
exact peaks, the peaks above start and the growth (exact, counted by value), what the tasks need
(sampled), the run times (a
histogram) and the largest memory of each kind; over all names the largest exact peaks and the killed
tasks. The gate, recommend, the report and the run assertion fold a run's TaskLines
(oomlab.record.stream.RunTasks) into one of these instead of holding the tasks."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from oomlab.record.exact_counts import ExactCounts
from oomlab.record.histogram import LogHistogram
from oomlab.record.kinds import KIND_STATS, kind_bytes
from oomlab.record.stream import TaskLine

LARGEST = 20  # tasks kept by exact peak
KILLED = 50  # killed tasks kept (every one is counted)
KILLED_OUTCOMES = ("killed", "descendant_killed", "poison")


@dataclass
class NameDigest:
    tasks: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    peaks: ExactCounts = field(default_factory=ExactCounts)  # exact VmHWM per task
    above_start: ExactCounts = field(default_factory=ExactCounts)  # exact peak above the task's start
    growth: ExactCounts = field(default_factory=ExactCounts)  # TaskLine.growth: its tree's where exact
    needs: ExactCounts = field(default_factory=ExactCounts)  # unreclaimable above start (sampled), page cache apart
    run_time: LogHistogram = field(default_factory=LogHistogram)
    kinds: dict[str, int] = field(default_factory=dict)  # each KIND_STATS figure's largest over the tasks
    tree_max: int | None = None  # the largest task-tree peak above start (programs included)
    failures: Counter[str] = field(default_factory=Counter)  # failed tasks by exception type

    def add(self, task: TaskLine) -> None:
        self.tasks += 1
        self.outcomes[task.outcome] += 1
        if task.outcome == "failed":
            self.failures[task.exception or "unknown"] += 1
        if task.tree_peak_above_start_bytes is not None:
            self.tree_max = max(task.tree_peak_above_start_bytes, self.tree_max or 0)
        if task.peak_is_exact and task.peak_rss_bytes is not None:
            self.peaks.add(task.peak_rss_bytes)
            if task.peak_above_start_bytes is not None:
                self.above_start.add(task.peak_above_start_bytes)
        grew = task.growth
        if grew is not None:
            self.growth.add(grew)
        if task.needs_above_start_bytes is not None:
            self.needs.add(task.needs_above_start_bytes)
        if task.run_time_s is not None:
            self.run_time.record(task.run_time_s)
        if task.memory_kinds:
            for stat, (kind, moment) in KIND_STATS.items():
                value = kind_bytes(task.memory_kinds, kind, moment)
                if value is not None:
                    self.kinds[stat] = max(value, self.kinds.get(stat, 0))


@dataclass
class TaskDigest:
    keep: int = LARGEST
    tasks: int = 0
    by_name: dict[str, NameDigest] = field(default_factory=dict)
    killed: list[TaskLine] = field(default_factory=list)  # the first KILLED of them
    _largest: list[tuple[int, int, TaskLine]] = field(default_factory=list)  # a min-heap of (peak, order, task)

    def add(self, task: TaskLine) -> None:
        self.tasks += 1
        digest = self.by_name.get(task.name)
        if digest is None:
            digest = self.by_name[task.name] = NameDigest()
        digest.add(task)
        if task.peak_is_exact and task.peak_rss_bytes is not None:
            item = (task.peak_rss_bytes, -self.tasks, task)  # a tie keeps the earlier task
            if len(self._largest) < self.keep:
                heapq.heappush(self._largest, item)
            elif item[:2] > self._largest[0][:2]:
                heapq.heapreplace(self._largest, item)
        if task.outcome in KILLED_OUTCOMES and len(self.killed) < KILLED:
            self.killed.append(task)

    @property
    def largest(self) -> list[TaskLine]:
        """The tasks with the largest exact peaks, largest first."""
        return [task for *_, task in sorted(self._largest, key=lambda item: item[:2], reverse=True)]

    @property
    def killed_count(self) -> int:
        return sum(d.outcomes[o] for d in self.by_name.values() for o in KILLED_OUTCOMES)

    @classmethod
    def of(cls, tasks: Iterable[TaskLine], keep: int = LARGEST) -> TaskDigest:
        digest = cls(keep)
        for task in tasks:
            digest.add(task)
        return digest
