"""Each pool child loads a model-sized block at start-up: concurrency × model must fit the limit."""
from __future__ import annotations

from celery import signals

from harness.scenario import Param, Plan, RunContext, TaskCall
from scenarios._common import scenario_app, touched_bytes, worker_param

description = "each pool child loads a model at start-up (worker_process_init): children × model > limit"
app = scenario_app("startup")
PARAMS = [Param("model_mib", 120, "MiB each pool child loads when it starts")]
DEFAULTS = {"memory": "256MiB", "concurrency": 4, "tasks": 4}
MODEL: bytes | None = None


@signals.worker_process_init.connect
def load_model(**_):
    """The common pattern: every prefork child loads its own copy of the model."""
    global MODEL
    MODEL = touched_bytes(worker_param("model_mib", 120))


@app.task(name="startup.predict")
def predict(x: int) -> int:
    return (len(MODEL) if MODEL else 0) + x


def plan(ctx: RunContext) -> Plan:
    return Plan([TaskCall(predict.name, (i,)) for i in range(ctx.tasks or DEFAULTS["tasks"])], timeout=30.0)
