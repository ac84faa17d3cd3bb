"""Tasks that grow until the kernel kills them, spaced out so the kernel logs every kill (its OOM
report is rate-limited: a burst of kills loses lines, and with them the kernel's own timestamps)."""
from __future__ import annotations

from harness.scenario import Param, Plan, RunContext, TaskCall
from scenarios._common import scenario_app, touched_bytes

description = "tasks that grow until OOM-killed, one every `spacing` seconds (benchmark)"
app = scenario_app("bench-killer")
PARAMS = [Param("kills", 30, "tasks, each OOM-killed"), Param("spacing", 0.6, "seconds between tasks")]
DEFAULTS = {"memory": "192MiB", "concurrency": 2}


@app.task(name="bench.grow")
def grow(limit_bytes: int) -> None:
    held = []
    while len(held) * 8 < 4 * limit_bytes / 2**20:
        held.append(touched_bytes(8))
    raise RuntimeError("grew to 4x the limit without being killed")


def plan(ctx: RunContext) -> Plan:
    calls = [TaskCall(grow.name, (ctx.limit_bytes,), at=i * ctx.params["spacing"], label="grows until killed")
             for i in range(ctx.params["kills"])]
    return Plan(calls, timeout=60 + ctx.params["kills"] * ctx.params["spacing"])
