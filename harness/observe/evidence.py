"""What the run's observers saw, frozen at one moment: the only input of `assemble()`.

Plain data (dataclasses of lists, dicts and numbers), so a run's evidence can be saved and read
back as a fixture, and a record rebuilt from it without a worker, a kernel or a broker."""

from __future__ import annotations

from dataclasses import dataclass, field

from oomlab.config.options import RunConfig
from oomlab.observe.monitor import Observations
from oomlab.observe.sampler import LeafSeries, PidStats
from oomlab.record.schema import CeleryEvent, TaskRecord


@dataclass
class SamplerFigures:
    max_usage: int | None = None  # the group's sampled maximum (the kernel's peak is exact)
    max_sum_rss: int | None = None
    usage_at_max_sum_rss: int | None = None
    cost: dict[str, float | int | None] = field(default_factory=dict)
    kinds_at_max_usage: dict[str, int] | None = None  # the group's anon/file/shmem at its highest sample
    kinds_max: dict[str, int] = field(default_factory=dict)  # each kind's highest sample
    leaves: dict[int, LeafSeries] = field(default_factory=dict)  # pool child pid -> its leaf over time


@dataclass
class Evidence:
    config: RunConfig
    observations: Observations
    pid_stats: dict[int, PidStats]
    celery_events: list[CeleryEvent]
    pool_noticed: dict[int, float]  # child pid -> when Celery's main process logged its death
    main_pids: list[int]  # every worker main process, the first one first
    main_exit_codes: dict[int, int | None]
    main_vmhwm: int | None  # the first main process's VmHWM, last read while it was alive
    ready_mono: float | None
    tasks: list[TaskRecord]  # sent by the replay, or seen by the probe (tasks the user's code sent)
    states: dict[str, tuple[str | None, str | None]]  # task id -> (result state, exception)
    group_peak: int | None  # the kernel's peak, read once the worker stopped (None before)
    sampler: SamplerFigures = field(default_factory=SamplerFigures)
    kmsg_clock: dict[str, float | None] | None = None
    celery_events_error: str | None = None
