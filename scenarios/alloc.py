"""Tasks allocate and touch N MiB and hold it briefly; one in every eight asks for more than the limit."""

from __future__ import annotations

import time
from typing import Any

from oomlab import Kind, Mix, Param, Plan, PlanCalls, RunContext, TaskCall, long_tail
from oomlab.scenarios._common import MIB, scenario_app, touched_bytes

description = "tasks allocate and touch N MiB and hold it briefly; some exceed the limit"
app = scenario_app("alloc")
PARAMS = [
    Param("sizes", [32, 64, 48, 16, 64, 24, 48], "MiB each fitting task allocates, cycled"),
    Param("over", 1.25, "the over-limit task asks for this multiple of --memory (0: none)"),
    Param("every", 8, "one task in this many is the over-limit one"),
    Param("hold", 0.3, "seconds each task holds its memory"),
]
DEFAULTS: dict[str, Any] = {"memory": "256MiB", "concurrency": 2, "tasks": 8}


@app.task(name="alloc.allocate")
def allocate(mib: float, hold: float) -> int:
    block = touched_bytes(mib)
    time.sleep(hold)
    return len(block)


def plan(ctx: RunContext) -> Plan:
    """Call i made when it is sent (PlanCalls): a plan of a million tasks holds no list."""
    sizes, every, hold = ctx.params["sizes"], max(1, ctx.params["every"]), ctx.params["hold"]
    over_mib = ctx.limit_bytes * ctx.params["over"] / MIB

    def call(index: int) -> TaskCall:
        over_before = max(0, (index - every // 2 + every - 1) // every) if over_mib else 0
        if over_mib and index % every == every // 2:
            mib, label = over_mib, "over-limit"
        else:
            mib, label = sizes[(index - over_before) % len(sizes)], "fits"
        return TaskCall(allocate.name, (mib, hold), label=f"{label} {mib:.0f} MiB")

    return Plan(PlanCalls(ctx.tasks or DEFAULTS["tasks"], call), timeout=60.0)


def mix(ctx: RunContext) -> Mix:
    """For load runs (--rate, --stages, --in-flight): fitting tasks whose sizes have a long tail
    (median the plan's median size, 1 in 100 above three times it, never above half the limit), and
    the over-limit kind at the plan's share (one in `every`)."""
    sizes, every, hold = sorted(ctx.params["sizes"]), max(1, ctx.params["every"]), ctx.params["hold"]
    median = sizes[len(sizes) // 2]
    size = long_tail(median, 3 * median, cap=ctx.limit_bytes / 2 / MIB)
    kinds = [Kind(allocate.name, every - 1 or 1, lambda rng: (round(size(rng), 1), hold), label="fits")]
    if ctx.params["over"]:
        over_mib = ctx.limit_bytes * ctx.params["over"] / MIB
        kinds.append(Kind(allocate.name, 1, lambda _rng: (over_mib, hold), label="over-limit"))
    return Mix(tuple(kinds))
