"""An oomlab scenario for your own tasks: point `app` at your Celery app and say what to send."""

from oomlab import Param, Plan, RunContext, TaskCall, Variant

app = "shop:app"  # imported by the worker as it is; oomlab only sets its broker and queue
description = "invoices of growing size"
PARAMS = [Param("lines", [10_000, 100_000, 400_000], "invoice lines, one task each")]
DEFAULTS = {"memory": "256MiB", "concurrency": 2}
VARIANTS = [
    Variant("bad", "as deployed"),
    Variant("fixed", "children recycled above 150 MiB", celery_conf={"worker_max_memory_per_child": 150 * 1024}),
]


def plan(ctx: RunContext) -> Plan:
    return Plan(
        [
            TaskCall("shop.render_invoice", (order, lines), label=f"{lines} lines")
            for order, lines in enumerate(ctx.params["lines"])
        ],
        timeout=60,
    )
