"""Tasks that grow until the kernel kills them, spaced out so the kernel logs every kill (its OOM
report is rate-limited: a burst of kills loses lines, and with them the kernel's own timestamps)."""

from __future__ import annotations

from oomlab.config.scenario import Param, Plan, RunContext, TaskCall
from oomlab.scenarios._common import grow_until_killed, scenario_app

description = "tasks that grow until OOM-killed, one every `spacing` seconds (benchmark)"
app = scenario_app("bench-killer")
PARAMS = [Param("kills", 30, "tasks, each OOM-killed"), Param("spacing", 0.6, "seconds between tasks")]
DEFAULTS = {"memory": "192MiB", "concurrency": 2}


@app.task(name="bench.grow")
def grow(limit_bytes: int) -> None:
    grow_until_killed(limit_bytes)


def plan(ctx: RunContext) -> Plan:
    calls = [
        TaskCall(grow.name, (ctx.limit_bytes,), at=i * ctx.params["spacing"], label="grows until killed")
        for i in range(ctx.params["kills"])
    ]
    return Plan(calls, timeout=60 + ctx.params["kills"] * ctx.params["spacing"])
