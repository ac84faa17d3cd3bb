"""run.json's `load` section, typed: what a load run measured, in aggregates only, so the
record is the same size at a thousand tasks or a million. Built by oomlab.run.load.section; a run that
was not a load run has none (RunRecord.load is None). Times are seconds, rates tasks per second."""

from __future__ import annotations

from dataclasses import dataclass, field

from oomlab.config.load_shapes import LoadShape

QUANTILE_NAMES = ("p50", "p90", "p95", "p99", "max")


@dataclass
class Quantiles:
    """Nearest-rank quantiles from a fixed-memory histogram (oomlab.record.histogram), max exact."""

    p50: int | float | None = None  # bytes are whole, seconds are not
    p90: int | float | None = None
    p95: int | float | None = None
    p99: int | float | None = None
    max: int | float | None = None
    n: int = 0

    def at(self, name: str) -> int | float | None:
        """One of QUANTILE_NAMES, as a bound names it (queue_wait.p95)."""
        if name not in QUANTILE_NAMES:
            raise KeyError(name)
        value: int | float | None = getattr(self, name)
        return value


@dataclass
class Counts:
    sent: int = 0
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    killed: int = 0
    unfinished: int = 0
    sent_by_tasks: int = 0  # of `sent`: sent by the worker itself (a chord's parts and callback, a task's task)


@dataclass
class Latency:
    queue_wait: Quantiles = field(default_factory=Quantiles)  # sent -> started
    run_time: Quantiles = field(default_factory=Quantiles)
    end_to_end: Quantiles = field(default_factory=Quantiles)  # sent -> final


@dataclass
class Points:
    """A per-second series (oomlab.run.load.series): counts as rates, gauges as sampled; buckets widen
    past ten minutes so the series stays at most 600 numbers."""

    width_s: float = 1.0
    values: list[float] = field(default_factory=list)


@dataclass
class NameSeries:
    offered: Points = field(default_factory=Points)
    achieved: Points = field(default_factory=Points)


@dataclass
class RunSeries(NameSeries):
    in_flight: Points = field(default_factory=Points)
    queue_depth: Points = field(default_factory=Points)
    group_bytes: Points = field(default_factory=Points)
    group_unreclaimable_bytes: Points = field(default_factory=Points)  # less page cache: what a kill is about


@dataclass
class NameFigures:
    """One task name's figures under `by_task`; the section holds the same for all tasks."""

    counts: Counts = field(default_factory=Counts)
    offered_per_s: float | None = None  # sends per second between the first and the last send
    achieved_per_s: float | None = None  # tasks run to the end per second, over the same n-1 intervals
    latency: Latency = field(default_factory=Latency)
    peak_rss_bytes: Quantiles = field(default_factory=Quantiles)  # exact per-task peaks, within the histogram's error
    series: NameSeries = field(default_factory=NameSeries)
    # what a limit must hold, per task above its start (a record before these were kept has n = 0):
    # the pool process's exact peak, the tree's exact peak, the unreclaimable part (sampled) and page cache
    peak_above_start_bytes: Quantiles = field(default_factory=Quantiles)
    tree_peak_above_start_bytes: Quantiles = field(default_factory=Quantiles)
    needs_above_start_bytes: Quantiles = field(default_factory=Quantiles)
    page_cache_above_start_bytes: Quantiles = field(default_factory=Quantiles)
    failures: dict[str, int] = field(default_factory=dict)  # failed tasks by exception type


@dataclass
class Schedule:
    """The send schedule's own error (open loop): what was offered against what was asked."""

    asked_per_s: float | None = None
    offered_per_s: float | None = None
    offered_error_percent: float | None = None
    lateness_s: Quantiles = field(default_factory=Quantiles)
    lateness_basis: str = ""


@dataclass
class ThroughputDip:
    """Tasks achieved per second in the seconds a child exited, against the run's other seconds."""

    per_s_in_seconds_with_a_replacement: float
    per_s_otherwise: float
    dip_percent: float | None
    seconds_with_a_replacement: int


@dataclass
class RecyclingFigures:
    """Pool children replaced during the run, and what a replacement cost as measured."""

    children_recycled: int = 0
    children_lost: int = 0
    replacement_seconds: Quantiles = field(default_factory=Quantiles)
    replacement_basis: str = ""
    throughput_dip: ThroughputDip | None = None


@dataclass
class LimitProjection:
    """When the group reaches its limit at the measured per-child slope."""

    made_at_task: int
    group_usage_bytes: int  # without page cache (reclaimed before a kill)
    slope_bytes_per_task: int
    limit_reached_at_task: int
    seconds_from_now: float | None


@dataclass
class RecyclingSettings:
    """The worker_max_* settings that would stop the growth, and their throughput cost."""

    per_child_budget_bytes: int
    worker_max_tasks_per_child: int
    worker_max_memory_per_child_kib: int
    throughput_cost_percent: float | None = None  # None: no replacement was measured in the run
    throughput_cost_basis: str = ""


@dataclass
class SoakFindings:
    children_measured: int = 0
    growth_per_1000_tasks_per_child_bytes: int | None = None
    growth_per_hour_per_child_bytes: int | None = None
    projection: LimitProjection | None = None
    first_projection: LimitProjection | None = None  # made once, early, to be checked against the kill
    first_kill_at_task: int | None = None
    significant: bool = False  # the growth is a line worth a finding, not noise
    first_projection_error_percent: float | None = None
    recycling: RecyclingSettings | None = None  # only for a positive slope
    r2: float | None = None  # the measured children's mean R² (None: no child ran enough tasks)
    fit: str = ""  # what the slope rests on: "not enough data: ...", "a steady line (...)", "within noise ..."


@dataclass
class HarnessCost:
    """What oomlab itself cost (this process, not the worker)."""

    oomlab_peak_rss_bytes: int = 0
    oomlab_cpu_seconds: float = 0.0
    load_cpu_seconds: float = 0.0  # from the first send to the load's end: the cost that grows with tasks
    checkpoint_seconds: Quantiles = field(default_factory=Quantiles)
    in_memory: str = ""
    peak_rss_basis: str = ""


@dataclass
class LoadSection(NameFigures):
    """The figures of all tasks (NameFigures) and the run's own: its shape, schedule, kills, recycling,
    soak and cost. A section made from a plan run's task records (oomlab.run.load.from_tasks) has only
    the figures, kills and `by_task`: its shape, schedule, recycling, soak and cost are None."""

    series: RunSeries = field(default_factory=RunSeries)
    shape: LoadShape | None = None
    calls_from: str = ""
    tasks_file: str | None = None  # the per-task stream beside run.json
    asked_per_s: float | None = None
    schedule: Schedule | None = None
    in_flight: int = 0
    oom_kills: int = 0
    oom_kills_per_1000_tasks: float | None = None
    recycling: RecyclingFigures | None = None
    soak: SoakFindings | None = None
    by_task: dict[str, NameFigures] = field(default_factory=dict)
    histogram_relative_error: float | None = None
    harness: HarnessCost | None = None
    findings: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, total: NameFigures, gauges: dict[str, Points] | None = None) -> LoadSection:
        """A section holding all tasks' figures (and the run's gauges over time); the rest is the caller's."""
        series = RunSeries(total.series.offered, total.series.achieved, **(gauges or {}))
        return cls(
            total.counts,
            total.offered_per_s,
            total.achieved_per_s,
            total.latency,
            total.peak_rss_bytes,
            series,
            peak_above_start_bytes=total.peak_above_start_bytes,
            tree_peak_above_start_bytes=total.tree_peak_above_start_bytes,
            needs_above_start_bytes=total.needs_above_start_bytes,
            page_cache_above_start_bytes=total.page_cache_above_start_bytes,
            failures=total.failures,
        )
