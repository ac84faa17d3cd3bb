"""A task that does next to nothing: throughput is then all Celery and whatever watches it."""

from __future__ import annotations

from oomlab.config.scenario import Plan, RunContext
from oomlab.scenarios._common import scenario_app

description = "a no-op task (benchmark)"
app = scenario_app("bench-tiny")


@app.task(name="bench.noop")
def noop(index: int) -> int:
    return index


def plan(ctx: RunContext) -> Plan:
    return Plan([])
