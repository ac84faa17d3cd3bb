"""Per-task-name statistics of exact peaks (VmHWM per task) from a run's tasks, and its OOM kills."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from oomlab.record.digest import NameDigest, TaskDigest
from oomlab.record.exact_counts import ExactCounts
from oomlab.record.kinds import KIND_STATS
from oomlab.record.schema import RunRecord
from oomlab.record.stream import TaskLine, line_of
from oomlab.workflows.gate.sites import sites_held


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
    # what each task needs above its start (anon + shmem + kernel of its tree, page cache apart;
    # sampled): growth less the page cache the kernel reclaims before it kills (docs/gate.md)
    needs_max: int | None = None
    needs_p50: int | None = None
    needs_p95: int | None = None
    # memory by kind, the largest over the tasks: anon_end, shmem_at_kill... (harness/record/kinds.py)
    kinds: dict[str, int] = field(default_factory=dict)

    def get(self, stat: str) -> int | None:
        if stat in KIND_STATS:
            return self.kinds.get(stat)
        value: int | None = getattr(self, STAT_ALIASES.get(stat, stat))
        return value


STAT_ALIASES = {"peak": "max", "growth": "growth_max", "needs": "needs_max"}
STATS = (
    "peak",
    "max",
    "min",
    "mean",
    "p50",
    "p95",
    "p99",
    "growth",
    "growth_p50",
    "growth_p95",
    "needs",
    "needs_p50",
    "needs_p95",
    *KIND_STATS,
)


def stats_of(peaks: Iterable[int] | ExactCounts, kills: int = 0) -> TaskStats:
    counts = peaks if isinstance(peaks, ExactCounts) else ExactCounts(peaks)
    p50, p95, p99 = counts.quantiles(0.50, 0.95, 0.99)
    return TaskStats(
        n=counts.n,
        min=counts.min or 0,
        max=counts.max or 0,
        mean=round(counts.mean or 0),
        p50=p50,
        p95=p95,
        p99=p99,
        kills=kills,
    )


def _with_growth(stats: TaskStats, growth: ExactCounts, needs: ExactCounts) -> TaskStats:
    if growth.n:
        stats.growth_max = growth.max
        stats.growth_p50, stats.growth_p95 = growth.quantiles(0.5, 0.95)
    if needs.n:
        stats.needs_max = needs.max
        stats.needs_p50, stats.needs_p95 = needs.quantiles(0.5, 0.95)
    return stats


def task_stats(record: RunRecord, tasks: Iterable[TaskLine] | None = None) -> dict[str, TaskStats]:
    """Each task name's exact peaks (killed runs have none), growth, needs, kinds and kill count. `tasks`:
    every task of the run, read once (oomlab.record.stream.RunTasks: run.json's and a load run's
    stream); by default the record's own list."""
    digest = TaskDigest.of(tasks if tasks is not None else map(line_of, record.tasks))
    kills: dict[str, int] = {}
    for kill in record.kills:
        if kill.task_name:
            kills[kill.task_name] = kills.get(kill.task_name, 0) + 1
    names = sorted({name for name, d in digest.by_name.items() if d.peaks.n} | set(kills))
    stats = {}
    for name in names:
        held = digest.by_name.get(name) or NameDigest()
        peaks = (
            stats_of(held.peaks, kills.get(name, 0)) if held.peaks.n else TaskStats(0, 0, 0, 0, 0, 0, 0, kills[name])
        )
        stats[name] = _with_growth(peaks, held.growth, held.needs)
        stats[name].sites = sites_held([t.top_allocations for t in record.tasks if t.name == name])
        stats[name].kinds = dict(held.kinds)
    return stats
