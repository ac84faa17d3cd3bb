"""Soak findings: how fast each pool child grows, when the group would reach its limit at that pace,
and the recycling settings that would stop it.

Each child's RSS after each task (the probe's VmRSS at postrun) is fitted by least squares against
the child's task count and against time, in O(1) memory per child. A task grows the one child that
ran it, so the group grows by the per-child slope per task: the group reaches its limit after
(limit - usage now) / slope more tasks."""

from __future__ import annotations

import math
from dataclasses import dataclass

from oomlab.assemble.trend import STEADY_MIN_R2
from oomlab.config.durations import format_seconds
from oomlab.record.load import LimitProjection, RecyclingSettings, SoakFindings

# A slope is stated only from a child that ran this many tasks: three points fit a line by chance
# about one time in three (r >= 0.89 for noise), six about one time in a hundred. Fewer: "not enough data".
MIN_TASKS_PER_CHILD = 6
MIN_POINTS = 6  # tasks measured over all children before a projection is made
# a growth is stated as a finding only when it is a line, not noise: the fit explains most of the
# spread and the children grew by a clear amount during the run
MIN_R2 = STEADY_MIN_R2
MIN_GROWTH_BYTES = 4 * 1024 * 1024


@dataclass
class Fit:
    """Running sums for a least-squares line y = a + b·x."""

    n: int = 0
    sx: float = 0.0
    sy: float = 0.0
    sxx: float = 0.0
    sxy: float = 0.0
    syy: float = 0.0

    def add(self, x: float, y: float) -> None:
        self.n += 1
        self.sx += x
        self.sy += y
        self.sxx += x * x
        self.sxy += x * y
        self.syy += y * y

    @property
    def r2(self) -> float | None:
        """How much of y's spread the line explains (1: all of it)."""
        sxx, syy = self.n * self.sxx - self.sx**2, self.n * self.syy - self.sy**2
        if self.n < 3 or sxx <= 0 or syy <= 0:
            return None
        return (self.n * self.sxy - self.sx * self.sy) ** 2 / (sxx * syy)

    @property
    def slope(self) -> float | None:
        spread = self.n * self.sxx - self.sx * self.sx
        if self.n < 2 or spread <= 0:
            return None
        return (self.n * self.sxy - self.sx * self.sy) / spread

    @property
    def intercept(self) -> float | None:
        slope = self.slope
        return None if slope is None else (self.sy - slope * self.sx) / self.n


@dataclass
class ChildGrowth:
    by_task: Fit
    by_time: Fit
    tasks: int = 0
    last_rss: int = 0


class Soak:
    def __init__(self, limit_bytes: int):
        self.limit = limit_bytes
        self.children: dict[int, ChildGrowth] = {}
        self.points = 0
        self.first_projection: LimitProjection | None = None  # made once, early, to be checked against the kill
        self.first_kill_at_task: int | None = None

    def observe(self, pid: int, at: float, rss_after: int | None) -> None:
        """A task ended in child `pid` at `at` seconds, leaving it at `rss_after` bytes."""
        if rss_after is None:
            return
        child = self.children.setdefault(pid, ChildGrowth(Fit(), Fit()))
        child.tasks += 1
        child.by_task.add(child.tasks, rss_after)
        child.by_time.add(at, rss_after)
        child.last_rss = rss_after
        self.points += 1

    def per_task_slope(self) -> float | None:
        """Bytes a child grows per task it runs, weighted by tasks over children with enough of them."""
        weighted = [(slope, c.tasks) for c in self._measured() if (slope := c.by_task.slope) is not None]
        if not weighted:
            return None
        return sum(slope * tasks for slope, tasks in weighted) / sum(tasks for _, tasks in weighted)

    def per_second_slope(self) -> float | None:
        slopes = [slope for c in self._measured() if (slope := c.by_time.slope) is not None]
        return sum(slopes) / len(slopes) if slopes else None

    def _measured(self) -> list[ChildGrowth]:
        return [c for c in self.children.values() if c.tasks >= MIN_TASKS_PER_CHILD]

    def r2(self) -> float | None:
        """The measured children's mean R² (how much of the spread their lines explain)."""
        r2 = [r for c in self._measured() if (r := c.by_task.r2) is not None]
        return sum(r2) / len(r2) if r2 else None

    def significant(self) -> bool:
        """The growth is a line worth a finding (the figures are in run.json either way)."""
        fits = self._measured()
        slope, r2 = self.per_task_slope(), self.r2()
        if not fits or slope is None or slope <= 0 or r2 is None:
            return False
        return max(slope * c.tasks for c in fits) >= MIN_GROWTH_BYTES and r2 >= MIN_R2

    def fit(self) -> str:
        """What the slope rests on, in a few words: not enough data, a steady line, or noise."""
        most = max((c.tasks for c in self.children.values()), default=0)
        if most < MIN_TASKS_PER_CHILD:
            return (
                f"not enough data: the most tasks one pool child ran was {most}, a slope needs "
                f"{MIN_TASKS_PER_CHILD} from one child"
            )
        r2, n, slope = self.r2(), len(self._measured()), self.per_task_slope()
        quality = "" if r2 is None else f"R² {r2:.2f} over {n} child(ren)"
        if slope is not None and slope <= 0:
            return f"no growth ({quality or 'flat'})"
        if self.significant():
            return f"a steady line ({quality})"
        return f"within noise, not a steady line ({quality or 'flat'}; a line needs R² ≥ {MIN_R2:g} and {MIN_GROWTH_BYTES >> 20} MiB grown)"

    def project(self, tasks_done: int, group_usage: int | None, rate: float | None) -> LimitProjection | None:
        """When the group reaches its limit at the measured slope: after how many tasks in all, and
        in how many seconds at `rate` tasks/s. None while the slope is unknown or not positive."""
        slope = self.per_task_slope()
        if slope is None or slope <= 0 or group_usage is None or self.points < MIN_POINTS:
            return None
        more = max(0.0, (self.limit - group_usage) / slope)
        projection = LimitProjection(
            made_at_task=tasks_done,
            group_usage_bytes=group_usage,
            slope_bytes_per_task=round(slope),
            limit_reached_at_task=round(tasks_done + more),
            seconds_from_now=round(more / rate, 1) if rate else None,
        )
        if self.first_projection is None:
            self.first_projection = projection
        return projection

    def kill_seen(self, tasks_started: int) -> None:
        if self.first_kill_at_task is None:
            self.first_kill_at_task = tasks_started

    def findings(self, tasks_done: int, group_usage: int | None, rate: float | None, budget: Budget) -> SoakFindings:
        """The soak section of run.json: slopes, projection, and what would stop the growth."""
        slope = self.per_task_slope()
        per_second = self.per_second_slope()
        found = SoakFindings(
            children_measured=len(self._measured()),
            growth_per_1000_tasks_per_child_bytes=None if slope is None else round(slope * 1000),
            growth_per_hour_per_child_bytes=None if per_second is None else round(per_second * 3600),
            projection=self.project(tasks_done, group_usage, rate),
            first_projection=self.first_projection,
            first_kill_at_task=self.first_kill_at_task,
            significant=self.significant(),
            r2=None if (r2 := self.r2()) is None else round(r2, 3),
            fit=self.fit(),
        )
        if self.first_projection and self.first_kill_at_task:
            projected = self.first_projection.limit_reached_at_task
            found.first_projection_error_percent = round(
                100 * (projected - self.first_kill_at_task) / self.first_kill_at_task, 1
            )
        if slope and slope > 0:
            found.recycling = budget.settings(slope, rate)
        return found


@dataclass
class Budget:
    """What one child may use: (limit - main process) / concurrency, less the largest transient a task
    adds on top of where it started; and what replacing a child costs, as measured in this run."""

    limit: int
    concurrency: int
    main_rss: int
    child_start_rss: int | None
    task_transient: int  # the largest peak above start seen
    replacement_seconds: float | None  # a new child's first task after the old one's exit (median)
    mean_run_time: float | None

    def settings(self, slope: float, rate: float | None) -> RecyclingSettings:
        per_child = (self.limit - self.main_rss) / max(1, self.concurrency)
        ceiling = per_child - self.task_transient  # a child above this after a task may not survive the next
        start = self.child_start_rss or 0
        max_tasks = max(1, math.floor((ceiling - start) / slope)) if ceiling > start else 1
        settings = RecyclingSettings(
            per_child_budget_bytes=round(per_child),
            worker_max_tasks_per_child=max_tasks,
            worker_max_memory_per_child_kib=max(1, int(ceiling // 1024)),
            throughput_cost_basis="not measured: no child was replaced while work waited in this run; run again "
            f"with --celery worker_max_tasks_per_child={max_tasks} to measure it",
        )
        if self.replacement_seconds is not None and self.mean_run_time:
            work = max_tasks * self.mean_run_time
            settings.throughput_cost_percent = round(
                100 * self.replacement_seconds / (work + self.replacement_seconds), 2
            )
            settings.throughput_cost_basis = (
                f"a replacement measured at {format_seconds(self.replacement_seconds)} per child every {max_tasks} tasks "
                f"of {format_seconds(self.mean_run_time)}"
            )
        return settings
