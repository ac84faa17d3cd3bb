"""Trial runs under the limit: the recommended concurrency (no OOM expected), then the next step up;
if that survives too, doubling and bisection find the smallest concurrency that is killed, so the
search costs O(log N) runs and the boundary shown is a measured one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from oomlab.config.options import RunConfig
from oomlab.config.scenario import Scenario
from oomlab.config.sizes import format_size
from oomlab.errors import WorkerStartFailed
from oomlab.record.schema import KillRecord
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
    plan_calls: int | None = None  # the calls the scenario's plan made; fewer than `tasks`: repeated
    killed_what: str = ""  # what the kernel killed, in a few words per kill

    @property
    def repeated(self) -> bool:
        return self.plan_calls is not None and self.plan_calls < self.tasks

    def filled(self, tasks_per_child: int) -> str:
        """How the trial filled its children, in one sentence."""
        how = (
            f"the plan's {self.plan_calls} call(s) repeated to {self.tasks} tasks"
            if self.repeated
            else f"{self.tasks} tasks from the plan"
        )
        return f"{how} at concurrency {self.concurrency}, sized for {tasks_per_child} a child"


@dataclass
class Proof:
    trials: list[Trial] = field(default_factory=list)
    smallest_failing: int | None = None  # None: nothing failed up to the largest trial

    @property
    def recommended(self) -> Trial | None:
        return self.trials[0] if self.trials else None


def run_trial(scenario: Scenario, config: RunConfig, concurrency: int, tasks_per_child: int) -> Trial:
    wanted = max(config.tasks or 0, tasks_per_child * concurrency)
    trial_config = replace(config, concurrency=concurrency, tasks=wanted, min_tasks=wanted)
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
        summary.tasks,  # every task's, a streamed plan's too (its record lists none: oomlab.run.plan)
        run.plan_calls,
        killed_what(run.record.kills),
    )


def killed_what(kills: list[KillRecord]) -> str:
    """The kills of a trial, grouped: role, the task it ran, the RSS the kernel reported."""
    seen: dict[str, int] = {}
    for kill in kills:
        what = f"a {kill.role} process" + (f" running {kill.task_name}" if kill.task_name else "")
        if kill.rss_bytes:
            what += f" at {format_size(kill.rss_bytes)} RSS"
        seen[what] = seen.get(what, 0) + 1
    return "; ".join(f"{count} × {what}" if count > 1 else what for what, count in seen.items())


def prove(recommended: int, ceiling: int, run_one: Callable[[int], Trial]) -> Proof:
    """`run_one(concurrency)` runs one trial (run_trial with the scenario and settings bound)."""
    proof = Proof()

    def trial(concurrency: int) -> Trial:
        result = run_one(concurrency)
        proof.trials.append(result)
        return result

    if trial(recommended).killed:
        return proof  # refuted: nothing above it is worth a run
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
