"""The main process builds a large object graph before the fork. Children share its pages until
CPython writes to them: a full garbage collection writes to every tracked object's header, so each
child ends up with a private copy (USS grows; RSS, which counts shared pages too, hardly moves).
gc.freeze() at worker_init moves the graph out of the collector's reach."""

from __future__ import annotations

import gc
from typing import Any

from celery import signals
from oomlab import Param, Plan, RunContext, TaskCall, Variant
from oomlab.scenarios._common import scenario_app, worker_param, worker_variant

description = "the main process builds a big object graph before the fork; GC in children copies it; fixed: gc.freeze()"
app = scenario_app("prefork-cow")
PARAMS = [
    Param("entries", 300_000, "entries in the graph the main process builds (~330 bytes each)"),
    Param("work_objects", 150_000, "short-lived containers each task creates (what sets off full collections)"),
    Param(
        "scan",
        False,
        "tasks also read every entry: reference counts then dirty the pages, which gc.freeze() does not prevent",
    ),
]
DEFAULTS: dict[str, Any] = {"memory": "384MiB", "concurrency": 3, "tasks": 6}
VARIANTS = [
    Variant("bad", "the graph is built at worker_init and left to the collector"),
    Variant("fixed", "gc.freeze() right after building it at worker_init"),
]
TABLE: dict[int, list] = {}


@signals.worker_init.connect
def build_table(**_):
    """In the worker's main process, before the pool forks: what a module-level load does."""
    if worker_variant() is None:
        return
    TABLE.update({i: [i, str(i), (i, i + 1)] for i in range(worker_param("entries", 300_000))})
    if worker_variant() == "fixed":
        gc.freeze()


@app.task(name="prefork_cow.lookup")
def lookup(keys: list[int], work_objects: int, scan: bool) -> int:
    found = sum(len(TABLE.get(key, ())) for key in keys)
    scratch = [[i] for i in range(work_objects)]  # survives young collections: a full one follows
    if scan:
        found += sum(len(value) for value in TABLE.values())
    return found + len(scratch)


def plan(ctx: RunContext) -> Plan:
    entries = ctx.params["entries"]
    calls = [
        TaskCall(
            lookup.name,
            ([i, i * 7 % entries, i * 13 % entries], ctx.params["work_objects"], ctx.params["scan"]),
            label=f"lookup {i}",
        )
        for i in range(ctx.tasks or DEFAULTS["tasks"])
    ]
    return Plan(calls, timeout=60.0)
