"""A model-sized block loaded at start-up. Loaded by every pool child (worker_process_init), it
costs concurrency × model before the first task, and the worker dies during start-up. The fixes:
load lazily in the child that needs it, fewer children, one process with threads, or one copy
loaded at module level in the main process and shared read-only after the fork."""

from __future__ import annotations

import threading
from typing import Any

from celery import signals
from oomlab import Param, Plan, RunContext, TaskCall, Variant
from oomlab.scenarios._common import scenario_app, touched_bytes, worker_param, worker_variant

description = "each pool child loads a model at start-up: children × model > limit; fixed: load it lazily"
app = scenario_app("startup")
PARAMS = [
    Param("model_mib", 120, "MiB the model takes once loaded"),
    Param("model_tasks", 1, "how many of the tasks need the model (the rest are light)"),
]
DEFAULTS: dict[str, Any] = {"memory": "320MiB", "concurrency": 4, "tasks": 4}
VARIANTS = [
    Variant("bad", "every pool child loads the model when it starts (worker_process_init)"),
    Variant("fixed", "a child loads the model on the first task that needs it"),
    Variant(
        "low-concurrency", "every child loads it at start, but there is only one child", defaults={"concurrency": 1}
    ),
    Variant(
        "threads",
        "--pool threads: one process loads it once, on first use, for all threads",
        defaults={"pool": "threads"},
    ),
    Variant("preload", "loaded at module level in the main process; children share its pages after the fork"),
]
_model: bytes | None = None
_lock = threading.Lock()


def _load() -> bytes:
    global _model
    with _lock:
        if _model is None:
            _model = touched_bytes(worker_param("model_mib", 120))
    return _model


if worker_variant() == "preload":  # a module-level load: runs in the main process, before the fork
    _load()


@signals.worker_process_init.connect
def load_at_child_start(**_):
    if worker_variant() in ("bad", "low-concurrency"):
        _load()


@app.task(name="startup.predict")
def predict(x: int) -> int:
    return len(_load()) + x


@app.task(name="startup.light")
def light(x: int) -> int:
    return x * 2


def plan(ctx: RunContext) -> Plan:
    count, heavy = ctx.tasks or DEFAULTS["tasks"], ctx.params["model_tasks"]
    return Plan(
        [
            TaskCall(predict.name if i < heavy else light.name, (i,), label="needs the model" if i < heavy else "light")
            for i in range(count)
        ],
        timeout=30.0,
    )
