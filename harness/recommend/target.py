"""Capacity for a traffic target: for each candidate limit, one child is measured (the existing
profile), each allowed pool gets its safe concurrency, and a short load run above what one replica
can do measures its sustainable rate; the fleet table, the split-queue plan and a proving run at
the chosen setting follow."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from harness.config import RunConfig
from harness.load.stream import RunTasks
from harness.recommend.capacity import plan_capacity
from harness.recommend.fleet import Candidate, FleetRow, cheapest, fleet_table
from harness.recommend.flow import measure
from harness.recommend.pools import safe_concurrency
from harness.recommend.profile import WorkerProfile
from harness.recommend.split import Demand, KindCost, SplitPlan, kind_costs, split_plan
from harness.recommend.split_proof import ClassProof, prove_split
from harness.recommend.throughput import LoadResult, at_setting, load_run, saturating_rate
from harness.scenario import Scenario


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
class LoadProof:
    setting: LoadResult  # at the chosen setting, at the target rate per replica
    step_up: LoadResult | None  # one more slot, same rate
    step_up_concurrency: int = 0
    queue_wait_met: bool | None = None


@dataclass
class TargetPlan:
    target: Target
    profiles: dict[int, WorkerProfile] = field(default_factory=dict)  # by limit
    rows: list[FleetRow] = field(default_factory=list)
    choice: FleetRow | None = None
    kinds: list[KindCost] = field(default_factory=list)
    split: SplitPlan | None = None
    split_proofs: list[ClassProof] = field(default_factory=list)  # one real run per class of the split
    proof: LoadProof | None = None


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
        profile = measure(scenario, at_setting(config, limit, "prefork", 1))
        result.profiles[limit] = profile
        kinds = kind_costs(RunTasks(profile.run_dir))
        result.kinds = kinds
        run_time = mean_run_time(kinds)
        say(f"{limit // 2**20} MiB: one child measured, {profile.tasks} tasks, median run time {run_time:.3f} s")
        for pool in pools:
            candidates.append(_candidate(scenario, config, profile, limit, pool, run_time, target, say))
    result.rows = fleet_table(candidates, target.rate, target.headroom, target.queue_wait_p95_s)
    result.choice = cheapest(result.rows)
    if result.kinds:
        demand = Demand(target.rate, target.margin, target.headroom, target.max_concurrency)
        result.split = split_plan(result.kinds, result.profiles, demand)
    if prove_it and result.choice:
        result.proof = prove_under_load(scenario, config, result, say)
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
        _with_recycling(at_setting(config, limit, pool, capped), profile, target),
        rate,
        target.measure_seconds,
    )
    say(
        f"{limit // 2**20} MiB {pool} x{capped}: sent {rate:g}/s for {target.measure_seconds:g} s, "
        f"achieved {measured.achieved_per_s}/s, queue wait p95 {measured.queue_wait_p95_s} s, "
        f"{measured.kills} OOM kill(s) · {measured.run_dir}"
    )
    return Candidate(
        limit,
        pool,
        capped,
        measured.achieved_per_s,
        measured.queue_wait_p95_s,
        target.measure_seconds,
        measured.kills,
        measured.run_dir,
        note,
    )


def _with_recycling(config: RunConfig, profile: WorkerProfile, target: Target) -> RunConfig:
    """Prefork runs with the plan's recycling settings, as the operator would run it."""
    if config.pool != "prefork":
        return config
    plan = plan_capacity(profile, config.memory_bytes, target.margin)
    conf = dict(config.celery_conf)
    if plan.max_memory_per_child_kib:
        conf["worker_max_memory_per_child"] = plan.max_memory_per_child_kib
    if plan.max_tasks_per_child:
        conf["worker_max_tasks_per_child"] = plan.max_tasks_per_child
    return replace(config, celery_conf=conf)


def prove_under_load(scenario: Scenario, config: RunConfig, plan: TargetPlan, say: Callable[[str], None]) -> LoadProof:
    """The chosen setting at the target rate per replica for --prove-seconds (0 OOM kills and the
    queue wait expected), then one more slot at the same rate (a kill expected when the limit is tight)."""
    assert plan.choice is not None
    chosen, target = plan.choice.candidate, plan.target
    profile = plan.profiles[chosen.limit_bytes]
    per_replica = round(target.rate / plan.choice.replicas, 3)
    setting = _with_recycling(at_setting(config, chosen.limit_bytes, chosen.pool, chosen.concurrency), profile, target)
    held = load_run(scenario, setting, per_replica, target.prove_seconds)
    say(
        f"proving {chosen.pool} x{chosen.concurrency}: {held.kills} OOM kill(s), queue wait p95 {held.queue_wait_p95_s} s"
    )
    up = chosen.concurrency + 1
    stepped = load_run(scenario, replace(setting, concurrency=up), per_replica, target.prove_seconds)
    say(f"one step up (x{up}): {stepped.kills} OOM kill(s) · {stepped.run_dir}")
    met = None
    if target.queue_wait_p95_s is not None and held.queue_wait_p95_s is not None:
        met = held.queue_wait_p95_s <= target.queue_wait_p95_s
    return LoadProof(held, stepped, up, met)
