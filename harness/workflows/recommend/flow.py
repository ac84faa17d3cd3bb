"""Measure, plan, prove: the whole recommendation for one scenario and limit (the command and the
plan-cost benchmark share it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from oomlab.config.options import RunConfig
from oomlab.config.scenario import Scenario
from oomlab.errors import WorkerStartFailed
from oomlab.run.hooks import RunHook
from oomlab.run.runner import Run
from oomlab.run.standard import standard_hooks
from oomlab.workflows.recommend.capacity import MAX_CONCURRENCY, CapacityPlan, plan_capacity
from oomlab.workflows.recommend.profile import WorkerProfile, profile_from_run
from oomlab.workflows.recommend.prove import Proof, Trial, prove, run_trial
from oomlab.workflows.recommend.startup_cost import startup_cost


@dataclass
class Recommendation:
    profile: WorkerProfile
    plan: CapacityPlan
    proof: Proof | None


def measure(scenario: Scenario, config: RunConfig, hooks: Sequence[RunHook] = ()) -> WorkerProfile:
    run = Run(scenario, replace(config, concurrency=1), hooks=[*standard_hooks(), *hooks])
    try:
        run.execute()
    except WorkerStartFailed as failure:
        raise WorkerStartFailed(
            f"the worker cannot start even with one child under {config.memory}: {failure.message}"
        ) from None
    return profile_from_run(run.run_dir, run.record)


def measure_startup(scenario: Scenario, config: RunConfig, profile: WorkerProfile, concurrency: int) -> None:
    """Start the worker with `concurrency` children (one task each) under config's limit and keep their
    start-up cost in the profile when it is the costlier: N children starting together pay more each
    than one alone. A start that is OOM-killed counts the limit as its peak (an upper bound)."""
    run = Run(scenario, replace(config, concurrency=concurrency, tasks=concurrency), hooks=standard_hooks())
    try:
        run.execute()
    except WorkerStartFailed:
        pass  # the group's peak before any task is what is measured; a failed start shows it at the limit
    profile.with_startup(startup_cost(run.run_dir, profile.fixed_bytes))


def plan_with_startup(scenario: Scenario, config: RunConfig, profile: WorkerProfile, margin: float) -> CapacityPlan:
    """Plan from the one-child profile, start that many children, plan again with their start-up
    cost as measured: the concurrency can only fall."""
    fixed = "fixed" if "fixed" in scenario.variants and config.variant != "fixed" else None
    plan = plan_capacity(profile, config.memory_bytes, margin, fixed_variant=fixed)
    if plan.concurrency < 2:
        return plan
    measure_startup(scenario, config, profile, plan.concurrency)
    return plan_capacity(profile, config.memory_bytes, margin, fixed_variant=fixed)


def recommend(
    scenario: Scenario,
    config: RunConfig,
    margin: float,
    tasks_per_child: int,
    prove_it: bool = True,
    on_measured: Callable[[WorkerProfile], None] = lambda profile: None,
    on_trial: Callable[[Trial], None] = lambda trial: None,
) -> Recommendation:
    profile = measure(scenario, config)
    plan = plan_with_startup(scenario, config, profile, margin)
    on_measured(profile)
    if not prove_it or plan.no_safe_setting:
        return Recommendation(profile, plan, None)
    celery_conf = dict(config.celery_conf)
    if plan.max_memory_per_child_kib:
        celery_conf["worker_max_memory_per_child"] = plan.max_memory_per_child_kib
    if plan.max_tasks_per_child:
        celery_conf["worker_max_tasks_per_child"] = plan.max_tasks_per_child
    trial_config = replace(config, celery_conf=celery_conf)
    ceiling = min(MAX_CONCURRENCY, max(plan.concurrency + 1, plan.rule_of_thumb, 2 * plan.concurrency))

    def run_one(concurrency: int) -> Trial:
        trial = run_trial(scenario, trial_config, concurrency, tasks_per_child)
        on_trial(trial)
        return trial

    return Recommendation(profile, plan, prove(plan.concurrency, ceiling, run_one))
