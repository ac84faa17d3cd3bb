"""Per-task-name statistics of exact peaks (VmHWM per task) from a run record, and its OOM kills."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.analysis import nearest_rank
from harness.gate.sites import sites_held
from harness.kinds import KIND_STATS, kind_bytes
from harness.record import RunRecord
from harness.typed_json import to_json


@dataclass
class TaskStats:
    n: int
    min: int
    max: int
    mean: int
    p50: int
    p95: int
    p99: int
    kills: int = 0  # OOM kills of this task name in the run
    sites: dict[str, int] = field(default_factory=dict)  # memray's sites at the peak (--profile): bytes held
    # growth above each task's start (its whole tree where exact): independent of what ran before it
    growth_max: int | None = None
    growth_p50: int | None = None
    growth_p95: int | None = None
    # memory by kind, the largest over the tasks: anon_end, shmem_at_kill... (harness/kinds.py)
    kinds: dict[str, int] = field(default_factory=dict)

    def get(self, stat: str) -> int | None:
        if stat in KIND_STATS:
            return self.kinds.get(stat)
        value: int | None = getattr(self, STAT_ALIASES.get(stat, stat))
        return value


STAT_ALIASES = {"peak": "max", "growth": "growth_max"}
STATS = ("peak", "max", "min", "mean", "p50", "p95", "p99", "growth", "growth_p50", "growth_p95", *KIND_STATS)


def stats_of(peaks: list[int], kills: int = 0) -> TaskStats:
    ordered = sorted(peaks)
    return TaskStats(
        n=len(ordered),
        min=ordered[0],
        max=ordered[-1],
        mean=round(sum(ordered) / len(ordered)),
        p50=nearest_rank(ordered, 0.50),
        p95=nearest_rank(ordered, 0.95),
        p99=nearest_rank(ordered, 0.99),
        kills=kills,
    )


def task_growth(task: dict[str, Any]) -> int | None:
    """A task's growth above its start: its tree's where the kernel measured it exactly, else its
    pool process's VmHWM above its start (exact tasks only)."""
    if task.get("tree_peak_is_exact") and task.get("tree_peak_above_start_bytes") is not None:
        growth: int = task["tree_peak_above_start_bytes"]
        return growth
    return task.get("peak_above_start_bytes") if task.get("peak_is_exact") else None


def kind_stats(tasks: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Each kind statistic's largest value over these tasks (absent where no task measured it)."""
    largest: dict[str, int] = {}
    for task in tasks:
        for stat, (kind, moment) in KIND_STATS.items():
            value = kind_bytes(task.get("memory_kinds"), kind, moment)
            if value is not None:
                largest[stat] = max(value, largest.get(stat, 0))
    return largest


def _with_growth(stats: TaskStats, growth: list[int]) -> TaskStats:
    if growth:
        ordered = sorted(growth)
        stats.growth_max = ordered[-1]
        stats.growth_p50, stats.growth_p95 = nearest_rank(ordered, 0.5), nearest_rank(ordered, 0.95)
    return stats


def task_stats(record: RunRecord, streamed: Iterable[dict[str, Any]] = ()) -> dict[str, TaskStats]:
    """From a run record: each task name's exact peaks (killed runs have none), growth and kill count.
    `streamed`: a load run's tasks, kept in tasks.jsonl rather than the record (issue 18)."""
    peaks: dict[str, list[int]] = {}
    growth: dict[str, list[int]] = {}
    kills: dict[str, int] = {}
    tasks = [*(to_json(t) for t in record.tasks), *streamed]
    for task in tasks:
        if task.get("peak_is_exact") and task.get("peak_rss_bytes") is not None:
            peaks.setdefault(task["name"], []).append(task["peak_rss_bytes"])
        if (grew := task_growth(task)) is not None:
            growth.setdefault(task["name"], []).append(grew)
    for kill in record.kills:
        if kill.task_name:
            kills[kill.task_name] = kills.get(kill.task_name, 0) + 1
    names = sorted(set(peaks) | set(kills))
    stats = {
        name: _with_growth(
            stats_of(peaks[name], kills.get(name, 0)) if name in peaks else TaskStats(0, 0, 0, 0, 0, 0, 0, kills[name]),
            growth.get(name, []),
        )
        for name in names
    }
    for name, task_stat in stats.items():
        task_stat.sites = sites_held([t.top_allocations for t in record.tasks if t.name == name])
        task_stat.kinds = kind_stats(t for t in tasks if t.get("name") == name)
    return stats
