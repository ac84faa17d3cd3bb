"""Trial runs under the limit: the recommended concurrency (no OOM expected), then the next step up;
if that survives too, doubling and bisection find the smallest concurrency that is killed, so the
search costs O(log N) runs and the boundary shown is a measured one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from oomlab.config.options import RunConfig
from oomlab.config.scenario import Scenario
from oomlab.errors import WorkerStartFailed
from oomlab.run.runner import Run
from oomlab.run.standard import standard_hooks


@dataclass
class Trial:
    concurrency: int
    run_dir: str
    killed: bool  # any OOM kill, or a worker that could not start under the limit
    kills: int
    status: str
    group_peak_bytes: int | None
    recycled: int  # children Celery replaced (worker_max_memory_per_child / max_tasks_per_child)
    tasks: int


@dataclass
class Proof:
    trials: list[Trial] = field(default_factory=list)
    smallest_failing: int | None = None  # None: nothing failed up to the largest trial

    @property
    def recommended(self) -> Trial | None:
        return self.trials[0] if self.trials else None


def run_trial(scenario: Scenario, config: RunConfig, concurrency: int, tasks_per_child: int) -> Trial:
    trial_config = replace(config, concurrency=concurrency, tasks=max(config.tasks or 0, tasks_per_child * concurrency))
    run = Run(scenario, trial_config, hooks=standard_hooks())
    try:
        run.execute()
    except WorkerStartFailed:
        pass  # the record says why; a start-up OOM is a failing trial like any other
    summary = run.record.summary
    return Trial(
        concurrency,
        run.run_dir,
        bool(run.record.kills) or run.record.status == "worker_start_failed",
        len(run.record.kills),
        run.record.status,
        summary.group_peak_bytes,
        summary.children_recycled,
        len(run.record.tasks),
    )


def prove(recommended: int, ceiling: int, run_one: Callable[[int], Trial]) -> Proof:
    """`run_one(concurrency)` runs one trial (run_trial with the scenario and settings bound)."""
    proof = Proof()

    def trial(concurrency: int) -> Trial:
        result = run_one(concurrency)
        proof.trials.append(result)
        return result

    trial(recommended)
    passed, candidate = recommended, recommended + 1
    while not trial(candidate).killed:  # the next step up, then doubling up to the ceiling
        passed = candidate
        if candidate >= ceiling:
            return proof
        candidate = min(ceiling, candidate * 2)
    failing = candidate
    while failing - passed > 1:  # bisect between the last that held and the first that was killed
        middle = (passed + failing) // 2
        if trial(middle).killed:
            failing = middle
        else:
            passed = middle
    proof.smallest_failing = failing
    return proof
