"""Work a task starts: a chord sent from a task (its parts and callback are tasks of the run too), a
chain the plan sends itself (`TaskCall(..., then=...)`), a poison message (acks_late +
reject_on_worker_lost on a task that never fits), a misspelled name."""

from __future__ import annotations

import os
import time
from typing import Any

from celery import chord
from oomlab import Param, Plan, RunContext, TaskCall, Variant
from oomlab.scenarios._common import MIB, scenario_app, touched_bytes, worker_variant

description = "a chord sent by a task, a chain sent by the plan, a poison message, a misspelled task name"
app = scenario_app("workflows")
PARAMS = [
    Param("parts", 3, "the chord's parts"),
    Param("part_mib", 24, "MiB each part touches"),
    Param("callback_mib", 24, "MiB the chord's callback touches"),
    Param("over", 3.0, "poison: the task asks for this multiple of --memory"),
    Param("hold", 0.3, "seconds each task holds its memory"),
]
DEFAULTS: dict[str, Any] = {"memory": "256MiB", "concurrency": 2}
VARIANTS = [
    Variant("chord", "a task sends a chord of parts and a callback, and returns at once"),
    Variant("chain", "the plan sends a chain: each part after the one before, then the callback with their sizes"),
    Variant(
        "poison",
        "a task that never fits, under acks_late + reject_on_worker_lost: delivered again after every kill",
        defaults={"concurrency": 1},
        celery_conf={"task_acks_late": True, "task_reject_on_worker_lost": True},
    ),
    Variant("misspelled", "the plan sends a task name the app does not register"),
]


# The poison variant is about the message, so every kill should land on its task's child. The kernel
# kills the process with the most memory; a fresh child (its shared libraries not yet touched) holds
# less than the main process, and a redelivery that grows while the last victim's memory is still being
# freed could make the main process the choice (a worker_lost run, seen in CI). A production worker
# meets that too: `oomlab run` shows it where it happens. Here, in the worker before its pool forks,
# oomlab's probe is asked to raise each pool child's oom_score_adj (docs/truth.md): half the limit added
# to its badness, or what the user asked for when that is more. Raising one's own needs no privilege;
# lowering the main process's would.
if worker_variant() == "poison":
    asked = os.environ.get("OOMLAB_CHILD_OOM_SCORE_ADJ", "")
    os.environ["OOMLAB_CHILD_OOM_SCORE_ADJ"] = str(min(1000, max(500, int(asked) if asked.isdigit() else 0)))


@app.task(name="workflows.start")
def start(parts: int, part_mib: float, callback_mib: float, hold: float) -> str:
    """Sends the chord and returns before it runs."""
    result = chord(part.s(part_mib, hold) for _ in range(parts))(collect.s(callback_mib, hold))
    return result.id


@app.task(name="workflows.part")
def part(mib: float, hold: float) -> int:
    block = touched_bytes(mib)
    time.sleep(hold)
    return len(block)


@app.task(name="workflows.add_part")
def add_part(sizes: list[int], mib: float, hold: float) -> list[int]:
    """A chain's link: the sizes so far, and its own."""
    return [*sizes, part(mib, hold)]


@app.task(name="workflows.collect")
def collect(sizes: list[int], mib: float, hold: float) -> int:
    block = touched_bytes(mib)
    time.sleep(hold)
    return sum(sizes) + len(block)


@app.task(name="workflows.never_fits", acks_late=True, reject_on_worker_lost=True)
def never_fits(mib: float) -> int:
    """Asks for more than the limit on every delivery: its message comes back after each kill."""
    return len(touched_bytes(mib))


def plan(ctx: RunContext) -> Plan:
    params = ctx.params
    if ctx.variant == "poison":
        mib = ctx.limit_bytes * params["over"] / MIB
        return Plan([TaskCall(never_fits.name, (mib,), label=f"{mib:.0f} MiB, never fits")], timeout=90.0)
    if ctx.variant == "chain":  # add_part | add_part ... | collect: the worker sends each next link
        mib, hold = params["part_mib"], params["hold"]
        links = [TaskCall(add_part.name, (mib, hold)) for _ in range(params["parts"] - 1)]
        collecting = TaskCall(collect.name, (params["callback_mib"], hold))
        first = TaskCall(add_part.name, ([], mib, hold), label="starts a chain", then=(*links, collecting))
        return Plan([first], timeout=60.0)
    name = "workflows.strat" if ctx.variant == "misspelled" else start.name
    args = (params["parts"], params["part_mib"], params["callback_mib"], params["hold"])
    return Plan([TaskCall(name, args, label="sends a chord")], timeout=60.0)
