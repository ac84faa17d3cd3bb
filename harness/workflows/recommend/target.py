"""Capacity for a traffic target: for each candidate limit, one child is measured (the existing
profile), each allowed pool gets its safe concurrency, and a short load run above what one replica
can do measures its sustainable rate; the fleet table, the split-queue plan and a proving run at
the chosen setting follow."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from oomlab.config.durations import format_seconds
from oomlab.config.options import RunConfig
from oomlab.config.scenario import Scenario
from oomlab.record.stream import RunTasks, TaskLine
from oomlab.workflows.recommend.cpu_use import CpuWatch
from oomlab.workflows.recommend.fleet import Candidate, FleetRow, cheapest, fleet_table
from oomlab.workflows.recommend.flow import measure, plan_with_startup
from oomlab.workflows.recommend.load_proof import LoadProof, prove_under_load, with_recycling
from oomlab.workflows.recommend.pools import safe_concurrency, slot_bytes
from oomlab.workflows.recommend.profile import WorkerProfile
from oomlab.workflows.recommend.split import Demand, KindCost, SplitPlan, kind_costs, split_plan
from oomlab.workflows.recommend.split_proof import ClassProof, prove_split
from oomlab.workflows.recommend.throughput import (
    LoadResult,
    Projection,
    at_setting,
    load_run,
    project,
    saturating_rate,
    sustainable,
)
from oomlab.workflows.recommend.why import pool_reasons


@dataclass
class Target:
    rate: float  # tasks per second the fleet must carry
    queue_wait_p95_s: float | None
    headroom: float
    margin: float
    measure_seconds: float
    prove_seconds: float
    max_concurrency: int


@dataclass
class TargetPlan:
    target: Target
    profiles: dict[int, WorkerProfile] = field(default_factory=dict)  # by limit
    off_cpu_s: dict[int, float | None] = field(default_factory=dict)  # by limit: a task's time off the CPU
    rows: list[FleetRow] = field(default_factory=list)
    choice: FleetRow | None = None
    kinds: list[KindCost] = field(default_factory=list)
    split: SplitPlan | None = None
    split_proofs: list[ClassProof] = field(default_factory=list)  # one real run per class of the split
    why: list[str] = field(default_factory=list)  # why the chosen pool beat each other pool
    proof: LoadProof | None = None


def run_times(tasks: Iterable[TaskLine]) -> list[float]:
    """Each finished task's seconds from its last prerun to its end."""
    return [task.run_time_s for task in tasks if task.run_time_s is not None]


def mean_run_time(kinds: list[KindCost]) -> float:
    tasks = sum(k.tasks for k in kinds)
    return sum(k.run_time_s * k.tasks for k in kinds) / tasks if tasks else 0.0


def plan_for_rate(
    scenario: Scenario,
    config: RunConfig,
    limits: list[int],
    pools: list[str],
    target: Target,
    prove_it: bool = True,
    say: Callable[[str], None] = lambda line: None,
) -> TargetPlan:
    result = TargetPlan(target)
    candidates = []
    for limit in limits:
        watch = CpuWatch()
        profile = measure(scenario, at_setting(config, limit, "prefork", 1), hooks=[watch])
        if "prefork" in pools:  # N children starting together cost more each than the one measured
            plan_with_startup(scenario, at_setting(config, limit, "prefork", 1), profile, target.margin)
        result.profiles[limit] = profile
        kinds = kind_costs(RunTasks(profile.run_dir))
        result.kinds = kinds
        run_time = mean_run_time(kinds)
        times = run_times(RunTasks(profile.run_dir))
        off_cpu = watch.off_cpu_per_task(len(times), statistics.fmean(times)) if times else None
        result.off_cpu_s[limit] = off_cpu
        say(
            f"{limit // 2**20} MiB: one child measured, {profile.tasks} tasks, median run time {format_seconds(run_time)}"
            + (f", {format_seconds(off_cpu)} of it off the CPU (waiting, sleeping)" if off_cpu is not None else "")
        )
        for pool in pools:
            candidates.append(_candidate(scenario, config, profile, limit, pool, run_time, off_cpu, target, say))
    result.rows = fleet_table(candidates, target.rate, target.headroom, target.queue_wait_p95_s)
    result.choice = cheapest(result.rows)
    if result.kinds:
        demand = Demand(target.rate, target.margin, target.headroom, target.max_concurrency)
        result.split = split_plan(result.kinds, result.profiles, demand)
    result.why = pool_reasons(result.rows, result.choice, result.profiles)
    if prove_it and result.choice:
        profile = result.profiles[result.choice.candidate.limit_bytes]
        result.proof = prove_under_load(
            scenario,
            config,
            profile,
            result.choice,
            target.rate,
            target.prove_seconds,
            target.margin,
            target.queue_wait_p95_s,
            say,
        )
    if prove_it and result.split:
        result.split_proofs = prove_split(
            scenario, config, result.split, target.prove_seconds, target.queue_wait_p95_s, say
        )
    return result


def _candidate(
    scenario: Scenario,
    config: RunConfig,
    profile: WorkerProfile,
    limit: int,
    pool: str,
    run_time: float,
    off_cpu: float | None,
    target: Target,
    say: Callable[[str], None],
) -> Candidate:
    concurrency, why = safe_concurrency(profile, pool, limit, target.margin)
    if concurrency < 1:
        return Candidate(limit, pool, 0, None, note=why)
    capped = min(concurrency, target.max_concurrency)
    note = f"capped at --max-concurrency {target.max_concurrency} (safe: {concurrency})" if capped < concurrency else ""
    rate = saturating_rate(capped, run_time, target.rate * (1 + target.headroom))
    measured = load_run(
        scenario,
        with_recycling(at_setting(config, limit, pool, capped), profile, target.margin),
        rate,
        target.measure_seconds,
    )
    projection = project(measured, pool, capped, off_cpu)
    per_replica = sustainable(measured, projection)
    shortfall = _contention(measured, projection) if per_replica != measured.achieved_per_s else ""
    say(
        f"{limit // 2**20} MiB {pool} x{capped}: sent {rate:g}/s for {target.measure_seconds:g} s, "
        f"achieved {measured.achieved_per_s}/s, queue wait p95 {format_seconds(measured.queue_wait_p95_s)}, "
        f"{measured.kills} OOM kill(s){'; ' + shortfall if shortfall else ''} · {measured.run_dir}"
    )
    service = per_replica
    if projection and per_replica and not measured.saturated:
        service = max(per_replica, projection.per_s)  # the run was not full: its slots could do more
    return Candidate(
        limit,
        pool,
        capped,
        per_replica,
        measured.queue_wait_p95_s,
        target.measure_seconds,
        measured.kills,
        measured.run_dir,
        note,
        safe_concurrency=concurrency,
        measured_per_s=measured.achieved_per_s,
        service_per_s=round(service, 3) if service else None,
        slot_bytes=slot_bytes(profile, pool, limit, target.margin),
        cpu_per_task_s=projection.cpu_per_task_s if projection else None,
        cores_usable=projection.cores_usable if projection else 0,
        cpu_bound=bool(projection and projection.cpu_bound),
        contention=shortfall,
    )


def _contention(measured: LoadResult, projection: Projection | None) -> str:
    """Why the row's rate is projected rather than the one achieved."""
    cpu = measured.cpu
    if cpu is None or projection is None:
        return ""
    return (
        f"other processes kept {cpu.others_cores:.1f} of the {cpu.cores} cores busy and the worker's threads "
        f"waited {cpu.worker_wait_s / cpu.window_s:.1f} s per second for one; with {projection.cores_usable} core(s) "
        f"of its own at {format_seconds(projection.cpu_per_task_s)} of CPU per task it would finish "
        f"{projection.per_s:.1f}/s (counted up to the {measured.offered_per_s or measured.asked_per_s:g}/s sent)"
    )
