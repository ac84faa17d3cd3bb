"""One planned call to the broker: its task, and the calls chained after it (`TaskCall.then`) in
the message as Celery's own chain puts them, so the worker sends each next one when the one before
succeeds, on the same queue. Every sender of a plan's calls (a plan's replay, a load run, a fleet)
sends through here."""

from __future__ import annotations

from typing import Any

from oomlab.config.plan_calls import TaskCall


def chain_option(app: Any, call: TaskCall, queue: Any) -> dict[str, Any]:
    """send_task's `chain` for the calls after `call`: their signatures, the next one last (the worker
    pops it), each routed to `queue`; nothing when none is chained."""
    chained = call.chained()
    if not chained:
        return {}
    name = getattr(queue, "name", queue)  # a kombu Queue (a plan's replay) or its name: the link carries the name
    options = {"queue": name} if name is not None else {}
    return {"chain": [app.signature(one.task, one.args, one.kwargs, **options) for one in reversed(chained)]}


def send_call(app: Any, call: TaskCall, task_id: str, queue: Any, **options: Any) -> None:
    app.send_task(
        call.task,
        args=call.args,
        kwargs=call.kwargs,
        task_id=task_id,
        queue=queue,
        **chain_option(app, call, queue),
        **options,
    )
