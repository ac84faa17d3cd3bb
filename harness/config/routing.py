"""Split queues in a run: the worker is one class of a fleet and consumes only its class's queue;
the client routes every task by name through Celery's `task_routes`, as the fleet's own
celeryconfig does, and sends only the tasks routed to that class. A task routed elsewhere (or not
at all) goes to the run's default queue, which nobody consumes: it stays unfinished, so a wrong
route shows in the record instead of being carried by the wrong worker."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from kombu import Exchange, Queue

if TYPE_CHECKING:
    from oomlab.config.options import RunConfig
    from oomlab.config.scenario import Plan


def class_queue(base: str, worker_class: str) -> str:
    """The queue a class's worker consumes; the run's own queue when the run is not split."""
    return f"{base}.{worker_class}" if worker_class else base


def declared_queue(name: str, arguments: dict[str, Any] | None = None) -> Queue:
    """A queue with its own direct exchange and routing key (never bound to the default queue's
    exchange, so a message for another queue cannot reach it)."""
    return Queue(name, Exchange(name), routing_key=name, queue_arguments=arguments or None)


def task_routes(base: str, routes: dict[str, str]) -> dict[str, dict[str, str]]:
    """Celery's `task_routes` for `routes` (task name -> worker class), with the run's queue names."""
    return {task: {"queue": class_queue(base, worker_class)} for task, worker_class in routes.items()}


def class_tasks(config: RunConfig) -> frozenset[str] | None:
    """The task names a split run sends (those routed to its class); None: every task, not split."""
    if not config.worker_class:
        return None
    return frozenset(task for task, name in config.routes.items() if name == config.worker_class)


def class_plan(plan: Plan, config: RunConfig) -> Plan:
    """The plan's calls of the run's class only (all of them when the run is not split)."""
    tasks = class_tasks(config)
    return plan if tasks is None else dataclasses.replace(plan, calls=[c for c in plan.calls if c.task in tasks])
