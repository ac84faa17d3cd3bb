"""The fidelity benchmark's kinds of memory as Celery tasks, one call per kind and repeat."""

from __future__ import annotations

from oomlab.config.scenario import Param, Plan, RunContext, TaskCall
from oomlab.scenarios._common import scenario_app

try:
    from bench.memory_kinds import KINDS
except ImportError:  # loaded as a scenario file by a worker: its folder is on the path, the repository is not
    from memory_kinds import KINDS  # type: ignore[import-not-found,no-redef]

description = "one task per kind of memory a task makes (benchmark)"
app = scenario_app("bench-fidelity")
PARAMS = [
    Param("mib", 32, "each kind's size"),
    Param("kinds", list(KINDS), "the kinds to run"),
    Param("repeat", 3, "calls per kind"),
]
DEFAULTS = {"memory": "512MiB", "concurrency": 1}


@app.task(name="bench.memory_kind")
def memory_kind(kind: str, mib: int) -> str:
    KINDS[kind](mib)
    return kind


def plan(ctx: RunContext) -> Plan:
    calls = [
        TaskCall(memory_kind.name, (kind, ctx.params["mib"]), label=kind)
        for _ in range(ctx.params["repeat"])
        for kind in ctx.params["kinds"]
    ]
    return Plan(calls, timeout=300)
