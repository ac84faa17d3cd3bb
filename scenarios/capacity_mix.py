"""A mix with a known per-task cost for capacity planning: an I/O-bound kind that sleeps and touches
a little memory, and a heavy kind (one task in `heavy_every`) that touches several times as much."""

from __future__ import annotations

import time
from typing import Any

from oomlab import Kind, Mix, Param, Plan, RunContext, TaskCall
from oomlab.scenarios._common import scenario_app, touched_bytes

description = "an I/O-bound kind (sleep + a little memory) and a rare heavy kind: capacity and split queues"
app = scenario_app("capacity_mix")
PARAMS = [
    Param("io_sleep", 0.2, "seconds the I/O-bound task sleeps (waiting on a remote service)"),
    Param("io_mib", 4, "MiB the I/O-bound task touches"),
    Param("heavy_mib", 48, "MiB the heavy task touches"),
    Param("heavy_hold", 0.2, "seconds the heavy task holds its memory"),
    Param("heavy_every", 20, "one task in this many is heavy (1: every task)"),
]
DEFAULTS: dict[str, Any] = {"memory": "256MiB", "concurrency": 1, "tasks": 20}
POOLS = ("prefork", "threads", "gevent", "solo")  # sleep and bytes: thread- and greenlet-safe


@app.task(name="capacity_mix.io")
def io(sleep: float, mib: float) -> int:
    block = touched_bytes(mib)
    time.sleep(sleep)
    return len(block)


@app.task(name="capacity_mix.heavy")
def heavy(mib: float, hold: float) -> int:
    block = touched_bytes(mib)
    time.sleep(hold)
    return len(block)


def _calls(ctx: RunContext) -> tuple[TaskCall, TaskCall]:
    p = ctx.params
    return (
        TaskCall(io.name, (p["io_sleep"], p["io_mib"]), label="io"),
        TaskCall(heavy.name, (p["heavy_mib"], p["heavy_hold"]), label="heavy"),
    )


def plan(ctx: RunContext) -> Plan:
    light, big = _calls(ctx)
    every = max(1, ctx.params["heavy_every"])
    calls = [big if index % every == every - 1 else light for index in range(ctx.tasks or DEFAULTS["tasks"])]
    return Plan(calls, timeout=60.0 + len(calls) * ctx.params["io_sleep"])


def mix(ctx: RunContext) -> Mix:
    light, big = _calls(ctx)
    every = max(1, ctx.params["heavy_every"])
    kinds = [Kind(big.task, 1.0, lambda _rng: big.args, label="heavy")]
    if every > 1:
        kinds.insert(0, Kind(light.task, every - 1.0, lambda _rng: light.args, label="io"))
    return Mix(tuple(kinds))
