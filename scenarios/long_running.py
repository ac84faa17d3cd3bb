"""A long task keeps every batch's result in a list until it finishes: memory climbs for the whole
run and the kernel kills it part-way, losing all of its work. Writing each batch out as it is done
keeps the task flat however long it runs."""

from __future__ import annotations

import os
import time
from typing import Any

from oomlab import Param, Plan, RunContext, TaskCall, Variant
from oomlab.scenarios._common import scenario_app, touched_bytes

description = "a long task accumulates every batch's result in memory until the end; fixed: writes each batch out"
app = scenario_app("long-running")
PARAMS = [
    Param("seconds", 8.0, "how long each task runs"),
    Param("mib_per_second", 40.0, "MiB of results each task produces per second"),
]
DEFAULTS: dict[str, Any] = {"memory": "256MiB", "concurrency": 1, "tasks": 2}
VARIANTS = [
    Variant("bad", "results accumulate in a list and are written at the end"),
    Variant("fixed", "each batch is appended to a file as soon as it is done"),
]
BATCHES_PER_SECOND = 10


@app.task(name="long_running.export")
def export(seconds: float, mib_per_second: float, out_path: str, stream: bool) -> int:
    batches = int(seconds * BATCHES_PER_SECOND)
    kept, written = [], 0
    with open(out_path, "wb") as out:
        for _ in range(batches):
            batch = touched_bytes(mib_per_second / BATCHES_PER_SECOND)
            if stream:
                out.write(batch[:4096])  # stands in for writing the batch out; the batch is then dropped
                written += len(batch)
            else:
                kept.append(batch)
            time.sleep(1 / BATCHES_PER_SECOND)
        written += sum(len(batch) for batch in kept)
    os.remove(out_path)
    return written


def plan(ctx: RunContext) -> Plan:
    stream = ctx.variant == "fixed"
    seconds = ctx.params["seconds"]
    calls = [
        TaskCall(
            export.name,
            (seconds, ctx.params["mib_per_second"], os.path.join(ctx.run_dir, f"export-{i}.bin"), stream),
            label=f"{seconds:g} s export",
        )
        for i in range(ctx.tasks or DEFAULTS["tasks"])
    ]
    return Plan(calls, timeout=30.0 + 2 * seconds * len(calls) / max(1, ctx.concurrency))
