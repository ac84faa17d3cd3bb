"""One task's single peak exceeds the limit: worker_max_memory_per_child cannot prevent it, because
billiard checks a child's RSS only after a task returns, and this one never returns."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from oomlab import Param, Plan, RunContext, TaskCall, Variant
from oomlab.scenarios._common import MIB, scenario_app, touched_bytes, worker_variant

description = "one task loads its whole input at once and peaks above the limit; recycling settings cannot help"
app = scenario_app("spike")
PARAMS = [
    Param("spike", 1.25, "the big task processes this multiple of --memory"),
    Param("chunk_mib", 16, "MiB per chunk in the fixed variant"),
    Param("small_mib", 16, "MiB the other tasks use"),
]
DEFAULTS: dict[str, Any] = {"memory": "256MiB", "concurrency": 2, "tasks": 6}
# both variants set worker_max_memory_per_child, so the record shows it did not prevent the kill
RECYCLE = {"worker_max_memory_per_child": 100 * 1024}
VARIANTS = [
    Variant(
        "bad",
        "the big task holds all of its input at once (worker_max_memory_per_child=100MiB is set)",
        celery_conf=RECYCLE,
    ),
    Variant("fixed", "the big task streams its input in chunks: its peak is one chunk", celery_conf=RECYCLE),
]


@app.task(name="spike.digest")
def digest(mib: float, chunk_mib: float) -> str:
    """Hash `mib` MiB of generated input: all at once (bad) or a chunk at a time (fixed)."""
    total = hashlib.sha256()
    if worker_variant() == "fixed":
        remaining = mib
        while remaining > 0:
            total.update(touched_bytes(min(chunk_mib, remaining)))
            remaining -= chunk_mib
    else:
        total.update(touched_bytes(mib))
    time.sleep(0.1)
    return total.hexdigest()


def plan(ctx: RunContext) -> Plan:
    big = ctx.limit_bytes * ctx.params["spike"] / MIB
    count = ctx.tasks or DEFAULTS["tasks"]
    calls = []
    for index in range(count):
        mib, label = (big, "spike") if index == count // 2 else (ctx.params["small_mib"], "small")
        calls.append(TaskCall(digest.name, (mib, ctx.params["chunk_mib"]), label=f"{label} {mib:.0f} MiB"))
    return Plan(calls, timeout=60.0)
