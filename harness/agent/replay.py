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
        (task_id, str((entry.get("message") or {}).get("name")), f"{len(entry.get('kills') or [])} kills")
        for task_id, entry in sorted(store.dead().items())
    ]


def replay(redis_url: str, broker_url: str, app_name: str, task_ids: list[str]) -> list[tuple[str, str]]:
    from celery import Celery

    store = Store(redis_url, app_name)
    dead = store.dead()
    missing = [task_id for task_id in task_ids if task_id not in dead]
    if missing:
        raise BadInput(f"no dead letter {missing[0]} for app {app_name!r} in {redis_url.split('@')[-1]}")
    app = Celery(app_name, broker=broker_url, set_as_current=False)
    sent = []
    for task_id in task_ids:
        message = dead[task_id].get("message") or {}
        if message.get("args") is None:
            raise BadInput(f"the dead letter {task_id} kept no arguments (they were too large): it cannot be sent")
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
