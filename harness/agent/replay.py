"""`oomlab replay`: a dead-lettered message sent again, under a new task id (the old id stays revoked
on every worker that received the revoke). The dead letter is removed once sent."""

from __future__ import annotations

import uuid

from oomlab.agent.store import Store
from oomlab.errors import BadInput


def list_dead(redis_url: str, app_name: str) -> list[tuple[str, str, str]]:
    """(task id, task name, "N kills") of each dead letter: the caller prints them, escaped."""
    store = Store(redis_url, app_name)
    return [
        (task_id, _name(entry), f"{len(entry.get('kills') or [])} kills")
        for task_id, entry in sorted(store.dead().items())
    ]


def _name(entry: dict) -> str:
    """The message's task name, else the one its kills knew (a dead letter without its message)."""
    names = [(entry.get("message") or {}).get("name")] + [kill.get("task") for kill in entry.get("kills") or []]
    return next((str(name) for name in names if name), "unknown")


def _unsendable(task_id: str, entry: dict) -> str | None:
    """Why the dead letter cannot be sent, in one sentence; None when it can."""
    message = entry.get("message")
    if not message:
        why = entry.get("no_message") or "the agent that stored it kept no message"
        return f"the dead letter {task_id} has no message to send: {why}"
    if message.get("args") is None or not message.get("name"):
        why = message.get("note") or "its arguments were not kept"
        return f"the dead letter {task_id} cannot be sent: {why}"
    return None


def replay(redis_url: str, broker_url: str, app_name: str, task_ids: list[str]) -> list[tuple[str, str]]:
    from celery import Celery

    store = Store(redis_url, app_name)
    dead = store.dead()
    missing = [task_id for task_id in task_ids if task_id not in dead]
    if missing:
        raise BadInput(f"no dead letter {missing[0]} for app {app_name!r} in {redis_url.split('@')[-1]}")
    for task_id in task_ids:  # all checked before any is sent
        problem = _unsendable(task_id, dead[task_id])
        if problem is not None:
            raise BadInput(problem)
    app = Celery(app_name, broker=broker_url, set_as_current=False)
    sent = []
    for task_id in task_ids:
        message = dead[task_id]["message"]
        new_id = str(uuid.uuid4())
        app.send_task(
            message["name"],
            args=message.get("args"),
            kwargs=message.get("kwargs"),
            task_id=new_id,
            queue=message.get("queue"),
            headers={"oomlab_replay_of": task_id},
        )
        store.forget(task_id)
        sent.append((task_id, new_id))
    return sent
