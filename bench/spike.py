"""The spiking task the fidelity benchmark measures, as a Celery scenario and a plain function."""

from __future__ import annotations

import time

from harness.scenario import Param, Plan, RunContext, TaskCall
from scenarios._common import scenario_app

description = "tasks that spike to a given size for a given time (benchmark)"
app = scenario_app("bench-spike")
PARAMS = [
    Param("mib", 200, "spike size"),
    Param("holds", [0.001, 0.01, 0.1], "seconds each spike is held"),
    Param("repeat", 3, "spikes per hold"),
]
DEFAULTS = {"memory": "1GiB", "concurrency": 1}


def spike(mib: int, hold: float) -> int:
    block = b"\x01" * (mib << 20)  # every page written: resident, not lazily mapped
    time.sleep(hold)
    size = len(block)
    del block
    return size


@app.task(name="bench.spike")
def spike_task(mib: int, hold: float) -> int:
    return spike(mib, hold)


def plan(ctx: RunContext) -> Plan:
    calls = [
        TaskCall(spike_task.name, (ctx.params["mib"], hold), label=f"{hold * 1000:g} ms")
        for hold in ctx.params["holds"]
        for _ in range(ctx.params["repeat"])
    ]
    return Plan(calls, timeout=120)
