"""One task that grows until the kernel OOM-kills it: on its first delivery only (`once`, a one-off
OOM that a redelivery survives) or on every delivery (`always`, a deterministic OOM that loops if
the message keeps coming back). The delivery lab runs it under each acks setting and broker."""

from __future__ import annotations

import os
from typing import Any

from oomlab import Param, Plan, RunContext, TaskCall, Variant
from oomlab.scenarios._common import grow_until_killed, scenario_app, worker_param

description = "a task the kernel kills on its first delivery (once) or on every delivery (always)"
app = scenario_app("oom-victim")
PARAMS = [
    Param("retry_delay", 1.0, "the task's default_retry_delay, used by task_retry_on_worker_lost"),
    Param("max_retries", 3, "the task's max_retries, used by task_retry_on_worker_lost"),
    Param("window", 12.0, "seconds to watch the task after it is sent"),
]
DEFAULTS: dict[str, Any] = {"memory": "192MiB", "concurrency": 1, "tasks": 1}
VARIANTS = [
    Variant("always", "every delivery grows until it is killed (a deterministic OOM)"),
    Variant("once", "only the first delivery is killed; a redelivery returns at once"),
]


@app.task(
    name="oom_victim.grow",
    bind=True,
    default_retry_delay=worker_param("retry_delay", 1.0),
    max_retries=worker_param("max_retries", 3),
)
def grow(self, limit_bytes: int, marker_dir: str, every_time: bool) -> str:
    """A marker file per task id tells a redelivery from the first delivery across processes."""
    marker = os.path.join(marker_dir, f"{self.request.id}.delivered")
    first = not os.path.exists(marker)
    open(marker, "a").close()
    if first or every_time:
        grow_until_killed(limit_bytes)
    return "survived a redelivery"


def plan(ctx: RunContext) -> Plan:
    every_time = ctx.variant == "always"
    calls = [
        TaskCall(grow.name, (ctx.limit_bytes, ctx.run_dir, every_time), label=f"OOM {ctx.variant}")
        for _ in range(ctx.tasks or DEFAULTS["tasks"])
    ]
    return Plan(calls, timeout=ctx.params["window"])
