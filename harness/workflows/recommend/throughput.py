"""Short real load runs: a worker at a given limit, pool and concurrency, sent tasks on an open-loop
schedule, and what its run.json `load` section measured (tasks finished per second, queue wait, OOM
kills, recycling, the leak slope) with the CPU its threads used. Sent above what one replica can do,
the achieved rate is the replica's sustainable rate, unless other processes held the cores the worker
wanted: then the rate is projected to a replica with its own cores, from the CPU each task used."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace

from oomlab.config.load_shapes import LoadShape
from oomlab.config.options import RunConfig
from oomlab.config.scenario import Scenario
from oomlab.errors import WorkerStartFailed
from oomlab.record.load import LoadSection, RecyclingFigures, SoakFindings
from oomlab.record.stream import RunTasks
from oomlab.run.runner import Run
from oomlab.run.standard import standard_hooks
from oomlab.workflows.recommend.cpu_use import CpuUse, CpuWatch

MIB = 1024 * 1024
OVERDRIVE = 1.5  # a saturating run sends this many times the estimated capacity
SATURATED = 0.95  # achieved below this share of offered: the replica could not keep up
# the worker was short of CPU: other processes kept this many cores busy while its threads waited
# for a core this many core-seconds per second
CONTENDED_OTHERS = 0.25
CONTENDED_WAIT = 0.10
CPU_BOUND = 0.8  # at the rate its slots allow, its usable cores would be this busy: the CPU is the limit


@dataclass
class LoadResult:
    run_dir: str
    status: str
    asked_per_s: float
    seconds: float
    achieved_per_s: float | None
    queue_wait_p95_s: float | None
    kills: int
    recycled: int
    group_peak_bytes: int | None
    offered_per_s: float | None = None
    tasks_done: int = 0  # tasks with a run time (finished, whatever their outcome)
    mean_run_time_s: float | None = None
    cpu: CpuUse | None = None
    recycling: RecyclingFigures | None = None  # the load section's: children replaced and what each cost
    soak: SoakFindings | None = None  # the load section's: per-child growth (the leak slope)

    @property
    def saturated(self) -> bool:
        offered = self.offered_per_s or self.asked_per_s
        return bool(self.achieved_per_s is not None and self.achieved_per_s < SATURATED * offered)


@dataclass
class Projection:
    """One replica with `cores_usable` cores to itself: its slots finish concurrency / time-per-task
    (the run time less its waits for a core), and its cores finish cores / CPU-per-task."""

    cpu_per_task_s: float  # every thread of the worker, Celery's own work included
    slot_time_s: float  # a task's run time less the time it waited for a core
    cores_usable: int  # prefork: one per child up to the cores; one process: one (the GIL)
    slots_per_s: float
    cpu_per_s: float

    @property
    def per_s(self) -> float:
        return min(self.slots_per_s, self.cpu_per_s)

    @property
    def cpu_bound(self) -> bool:
        return self.slots_per_s >= CPU_BOUND * self.cpu_per_s


def limit_text(limit_bytes: int) -> str:
    return f"{limit_bytes // MIB}MiB" if limit_bytes % MIB == 0 else str(limit_bytes)


def at_setting(config: RunConfig, limit_bytes: int, pool: str, concurrency: int) -> RunConfig:
    return replace(config, memory=limit_text(limit_bytes), memory_bytes=limit_bytes, pool=pool, concurrency=concurrency)


def load_run(scenario: Scenario, config: RunConfig, rate: float, seconds: float) -> LoadResult:
    shape = LoadShape("rate", seconds, rate=rate, seed=0)
    watch = CpuWatch()
    run = Run(scenario, replace(config, tasks=None, load=shape.as_dict()), hooks=[*standard_hooks(), watch])
    try:
        run.execute()
    except WorkerStartFailed:
        pass  # the record says why: a worker that cannot start under the limit carries nothing
    section = run.record.load or LoadSection()  # a worker that could not start: no figures
    run_times = [t.run_time_s for t in RunTasks(run.run_dir) if t.run_time_s is not None]
    started = run.record.status != "worker_start_failed"
    return LoadResult(
        run.run_dir,
        run.record.status,
        rate,
        seconds,
        section.achieved_per_s if started else None,
        section.latency.queue_wait.p95,
        len(run.record.kills),
        run.record.summary.children_recycled,
        run.record.summary.group_peak_bytes,
        section.offered_per_s,
        len(run_times),
        statistics.fmean(run_times) if run_times else None,
        watch.result() if started else None,
        section.recycling,
        section.soak,
    )


def cores_usable(pool: str, concurrency: int, cores: int) -> int:
    """Python runs on one core at a time per process (the GIL): only prefork spreads over cores."""
    return max(1, min(concurrency, cores)) if pool == "prefork" else 1


def project(result: LoadResult, pool: str, concurrency: int, off_cpu_s: float | None = None) -> Projection | None:
    """`off_cpu_s`: what a task spends neither on a core nor waiting for one, from the one-child
    measuring run (cpu_use.CpuWatch.off_cpu_per_task); without it, the run time less the core waits
    per task, which in one process still holds the waits for the other tasks' turns (the GIL)."""
    cpu = result.cpu
    if cpu is None or not result.tasks_done or not result.mean_run_time_s or cpu.worker_cpu_s <= 0:
        return None
    per_task = cpu.worker_cpu_s / result.tasks_done
    if off_cpu_s is not None:
        slot_time = off_cpu_s + per_task
    else:
        slot_time = max(per_task, result.mean_run_time_s - cpu.worker_wait_s / result.tasks_done)
    usable = cores_usable(pool, concurrency, cpu.cores)
    return Projection(round(per_task, 6), round(slot_time, 6), usable, concurrency / slot_time, usable / per_task)


def contended(result: LoadResult) -> bool:
    """Other processes kept cores busy while the worker's threads waited for one."""
    cpu = result.cpu
    if cpu is None or not cpu.window_s:
        return False
    return cpu.others_cores >= CONTENDED_OTHERS and cpu.worker_wait_s / cpu.window_s >= CONTENDED_WAIT


def sustainable(result: LoadResult, projection: Projection | None) -> float | None:
    """The achieved rate; when the run fell short because others held the cores (saturated and
    contended), the projection with the replica's own cores, never above what the run offered."""
    achieved = result.achieved_per_s
    if achieved is None or projection is None or not (result.saturated and contended(result)):
        return achieved
    offered = result.offered_per_s or result.asked_per_s
    return round(max(achieved, min(offered, projection.per_s)), 3)


def saturating_rate(concurrency: int, run_time_s: float, ceiling: float) -> float:
    """Above what `concurrency` slots finish per second at the measured run time, and at most
    `ceiling` (a replica that carries the whole target needs no more)."""
    estimate = concurrency / max(run_time_s, 1e-3)
    return round(min(ceiling, OVERDRIVE * estimate), 3)
