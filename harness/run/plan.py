"""A plan run's plan, and which way it is sent: made once (its names checked before the worker
starts), then either replayed with every task held for run.json (a small plan: each task's full
record, executions and process tree included) or, above STREAM_ABOVE tasks, sent like a load run:
at most WINDOW tasks outstanding, each final task streamed to tasks.jsonl and forgotten, run.json
keeping the aggregates, so oomlab's own memory does not grow with the plan."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING

from oomlab.config.load_shapes import PLAN, LoadShape
from oomlab.config.plan_calls import call_names, in_time_order, plan_timeout, task_count
from oomlab.config.routing import class_plan
from oomlab.config.scenario import Plan, PlanCalls, TaskCall, call_reader, repeated

if TYPE_CHECKING:
    from oomlab.run.state import RunState

STREAM_ABOVE = 1_000  # a plan of more tasks than this streams (the record keeps no task list)
WINDOW = 1_000  # a streamed plan's tasks outstanding at once: far above what a worker prefetches


def scenario_plan(run: RunState) -> Plan:
    """The scenario's own plan, made once: its names are checked before the worker starts, and the
    same calls are sent once it is ready."""
    if run.own_plan is None:
        run.planned = True
        run.own_plan = run.scenario.plan(run.context())
        run.plan_calls = len(run.own_plan.calls)
    return run.own_plan


def run_plan(run: RunState) -> Plan:
    """What the run sends: the scenario's plan repeated to --min-tasks, its worker class's calls only."""
    return class_plan(repeated(scenario_plan(run), run.config.min_tasks), run.config)


def timeout_of(run: RunState, plan: Plan) -> float:
    """--timeout, else the plan's, grown with its tasks, chained links included (oomlab.config.plan_calls)."""
    return run.config.timeout or plan_timeout(plan.timeout, task_count(plan.calls), run.config.concurrency)


def choose_way(run: RunState) -> None:
    """A plan run of more than STREAM_ABOVE tasks becomes a load run of the plan's own calls (its
    config's `load` says so, before the worker starts: like any load run it asks the worker for no task
    events). A run with a load shape already, or a small plan, is left as it is."""
    if run.config.load:
        return
    plan = run_plan(run)
    if len(plan.calls) <= STREAM_ABOVE:
        return
    shape = LoadShape(PLAN, None, in_flight=WINDOW, tasks=len(plan.calls))
    run.config = dataclasses.replace(run.config, load=shape.as_dict(), timeout_used=timeout_of(run, plan))
    run.record.config = run.config


def plan_names(plan: Plan, scenario: str) -> list[str]:
    """The plan's distinct task names (a lazy plan's calls made once each, none held)."""
    return call_names(sent_calls(plan, scenario))


def sent_calls(plan: Plan, scenario: str) -> Iterator[TaskCall]:
    """The plan's calls in the order they are due; a lazy plan's made one at a time, each checked
    (a maker's error or a wrong value is the scenario's failure, in one sentence)."""
    calls = plan.calls
    if isinstance(calls, PlanCalls):
        call = call_reader(scenario, calls)
        return (call(index) for index in range(len(calls)))
    return in_time_order(calls)
