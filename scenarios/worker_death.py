"""A run that does not do its work: a task raises MemoryError (Celery's prefork worker shuts down
on it, every queued task left unrun), or a task outlives the run's --timeout."""

from __future__ import annotations

import time

from oomlab import Param, Plan, RunContext, TaskCall, Variant
from oomlab.scenarios._common import scenario_app

description = "a task raises MemoryError (the prefork worker shuts down) or outlives the run's timeout"
app = scenario_app("worker_death")
PARAMS = [Param("sleep", 30.0, "seconds the slow task sleeps (variant timeout)")]
DEFAULTS = {"memory": "256MiB", "concurrency": 1, "tasks": 4}
VARIANTS = [
    Variant("bad", "the second task raises MemoryError, and the prefork worker shuts down"),
    Variant("fixed", "the second task catches its MemoryError and fails alone; the worker goes on"),
    Variant("timeout", "the second task sleeps past the run's timeout"),
]


@app.task(name="worker_death.quick")
def quick() -> str:
    return "done"


@app.task(name="worker_death.memory_error")
def memory_error() -> None:
    raise MemoryError("a task ran out of memory (as under RLIMIT_AS or a failed allocation)")


@app.task(name="worker_death.memory_error_caught")
def memory_error_caught() -> None:
    """The fix: a MemoryError turned into an ordinary failure of this task alone."""
    try:
        memory_error.run()
    except MemoryError as error:
        raise RuntimeError(f"out of memory: {error}") from None


@app.task(name="worker_death.slow")
def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


def plan(ctx: RunContext) -> Plan:
    count = int(ctx.tasks or 4)
    calls = [TaskCall(quick.name, label="quick") for _ in range(count)]
    if ctx.variant == "timeout":
        calls.insert(1, TaskCall(slow.name, (ctx.params["sleep"],), label="slow"))
        return Plan(calls, timeout=3.0)
    task = memory_error_caught if ctx.variant == "fixed" else memory_error
    calls.insert(1, TaskCall(task.name, label="MemoryError"))
    return Plan(calls, timeout=30.0)
