"""Every call leaks memory into a module-level cache: the child grows until the kernel kills it,
unless worker_max_memory_per_child recycles it first (billiard's exit code 155)."""

from __future__ import annotations

import time
from typing import Any

from oomlab import Param, Plan, RunContext, TaskCall, Variant
from oomlab.scenarios._common import scenario_app, touched_bytes

description = "each task call leaks N MiB into a module-level cache; the child grows until it is killed"
app = scenario_app("leak")
PARAMS = [
    Param("leak_mib", 16, "MiB each call leaks"),
    Param("hold", 0.1, "seconds each call takes"),
]
DEFAULTS: dict[str, Any] = {"memory": "256MiB", "concurrency": 2, "tasks": 24}
VARIANTS = [
    Variant("bad", "no recycling: children keep what they leak until the kernel kills one"),
    Variant(
        "fixed",
        "worker_max_memory_per_child=80MiB: a child is replaced after the task that crosses it",
        celery_conf={"worker_max_memory_per_child": 80 * 1024},
    ),
]
CACHE: list[bytes] = []


@app.task(name="leak.remember")
def remember(mib: float, hold: float) -> int:
    CACHE.append(touched_bytes(mib))  # the leak: kept "for next time", never read again
    time.sleep(hold)
    return len(CACHE)


def plan(ctx: RunContext) -> Plan:
    calls = [
        TaskCall(remember.name, (ctx.params["leak_mib"], ctx.params["hold"]), label=f"call {i + 1}")
        for i in range(ctx.tasks or DEFAULTS["tasks"])
    ]
    return Plan(calls, timeout=60.0)
