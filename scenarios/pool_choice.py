"""Which pool carries a rate in the least memory. `io`: every task reads a large table of Python
objects the worker's main process built at import (a price list, a vocabulary) and then waits on a
remote service; reading writes each object's reference count, so every prefork child ends up with its
own copy of the table's pages, while threads and gevent share one. `cpu`: every task computes; one
process runs Python on one core at a time (the GIL), so only prefork uses more than one core."""

from __future__ import annotations

import time
from typing import Any

from oomlab import Kind, Mix, Param, Plan, RunContext, TaskCall, Variant
from oomlab.scenarios._common import MIB, scenario_app, touched_bytes, worker_param, worker_variant

description = "I/O-bound tasks reading a big shared table (threads/gevent win) or CPU-bound tasks (prefork wins)"
app = scenario_app("pool_choice")
PARAMS = [
    Param("table_mib", 48, "MiB of the table (floats in a list) the main process builds at import (variant io)"),
    Param("wait", 0.2, "seconds an I/O-bound task waits on the remote service (variant io)"),
    Param("cpu_ms", 50.0, "milliseconds of CPU a CPU-bound task computes (variant cpu)"),
    Param("task_mib", 1.0, "MiB each task touches"),
]
DEFAULTS: dict[str, Any] = {"memory": "256MiB", "concurrency": 1, "tasks": 12}
VARIANTS = [
    Variant("io", "tasks read the shared table, then wait (I/O-bound)"),
    Variant("cpu", "tasks compute (CPU-bound); no table"),
]
POOLS = ("prefork", "threads", "gevent", "solo")  # a read-only table, sleep and arithmetic: thread- and greenlet-safe
FLOAT_SLOT = 32  # bytes per entry: a float object (24) and its pointer in the list (8)

# a module-level load: in a worker it runs once, in the main process, before the pool forks
TABLE: list[float] = (
    [float(i) for i in range(int(worker_param("table_mib", 48) * MIB) // FLOAT_SLOT)]
    if worker_variant() == "io"
    else []
)


@app.task(name="pool_choice.lookup")
def lookup(wait: float, mib: float) -> float:
    block = touched_bytes(mib)
    total = sum(TABLE)  # a read, but it writes every float's reference count
    time.sleep(wait)
    return total + len(block)


@app.task(name="pool_choice.compute")
def compute(cpu_ms: float, mib: float) -> int:
    block = touched_bytes(mib)
    end, spins = time.thread_time() + cpu_ms / 1000, 0
    while time.thread_time() < end:  # this thread's CPU time: the same work whatever else runs
        spins += 1
    return spins + len(block)


def _call(ctx: RunContext) -> TaskCall:
    p = ctx.params
    if ctx.variant == "cpu":
        return TaskCall(compute.name, (p["cpu_ms"], p["task_mib"]), label="compute")
    return TaskCall(lookup.name, (p["wait"], p["task_mib"]), label="lookup")


def plan(ctx: RunContext) -> Plan:
    return Plan([_call(ctx)] * (ctx.tasks or DEFAULTS["tasks"]), timeout=60.0)


def mix(ctx: RunContext) -> Mix:
    call = _call(ctx)
    return Mix((Kind(call.task, 1.0, lambda _rng: call.args, label=call.label),))
