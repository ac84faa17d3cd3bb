"""Tasks that do nothing (or sleep): the harness's own cost per task, and a worker's ceiling rate."""

from __future__ import annotations

import time

from oomlab import Kind, Mix, Param, Plan, PlanCalls, RunContext, TaskCall
from oomlab.scenarios._common import scenario_app

description = "tasks that do nothing, or sleep a while: harness cost per task and a worker's ceiling rate"
app = scenario_app("noop")
PARAMS = [Param("sleep", 0.0, "seconds each task sleeps (0: returns at once)")]
TASKS = 100
DEFAULTS = {"memory": "256MiB", "concurrency": 2, "tasks": TASKS}


@app.task(name="noop.run")
def run(sleep: float) -> None:
    if sleep > 0:
        time.sleep(sleep)


def plan(ctx: RunContext) -> Plan:
    call = TaskCall(run.name, (ctx.params["sleep"],))  # the same call each time: a million hold one
    tasks = ctx.tasks or TASKS
    return Plan(PlanCalls(tasks, lambda _index: call), timeout=60.0 + tasks * max(ctx.params["sleep"], 0.002))


def mix(ctx: RunContext) -> Mix:
    sleep = ctx.params["sleep"]
    return Mix((Kind(run.name, 1.0, lambda _rng: (sleep,)),))
