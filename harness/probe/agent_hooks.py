"""What `oomlab agent` needs from inside the worker beyond the recorder's events, sent on the same
channel and only when the agent's socket is there (OOMLAB_PROBE_FD):

- at worker start, how to reach the app's result backend and broker (a filtered copy of its
  settings, over the local socket only) and which tasks are redelivered after a lost worker
  (acks_late and reject_on_worker_lost), so the agent repairs what Celery will not;
- at a redelivered task's start, its message (name, args, kwargs, headers), for the dead-letter
  list; other tasks cost one set look-up;
- in the main process, Celery's own late writes the agent must correct: a WorkerLostError stored
  after the agent's OOMKilled, and REVOKED stored when a dead-lettered message is dropped.
"""

from __future__ import annotations

import json
import os

from celery import signals
from oomlab.probe.channel import FD_ENV, emit

APP = "agent_app"  # the app's settings and its redelivered task names
MESSAGE = "agent_message"  # a redelivered task's message, at its start
LOST = "agent_lost"  # Celery stored WorkerLostError for a task (main process)
REVOKED = "agent_revoked"  # Celery dropped a revoked task's message and stored REVOKED (main process)

_ACTIVE = os.environ.get(FD_ENV, "").isdigit()
_CONF_PREFIXES = ("result_", "broker_", "redis_", "event_", "database_", "mongodb_", "cache_", "s3_")
_CONF_KEYS = ("accept_content", "task_serializer", "timezone", "enable_utc", "task_default_queue")
_MESSAGE_CAP = 256 * 1024  # a larger message is dead-lettered without its arguments
_redelivered: set[str] = set()


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _settings(app) -> dict:
    conf = {}
    for key, value in app.conf.items():
        key = key.lower()
        if (key.startswith(_CONF_PREFIXES) or key in _CONF_KEYS) and _jsonable(value):
            conf[key] = value
    conf["broker_url"] = app.conf.broker_url
    conf["result_backend"] = app.conf.result_backend
    return conf


@signals.worker_ready.connect
def _on_ready(sender=None, **_):
    if not _ACTIVE:
        return
    app = sender.app
    flags = {
        name: bool(task.acks_late and task.reject_on_worker_lost)
        for name, task in app.tasks.items()
        if not name.startswith("celery.")
    }
    _redelivered.update(name for name, yes in flags.items() if yes)
    emit(APP, main=app.main, hostname=sender.hostname, conf=_settings(app), redelivered=sorted(_redelivered))


@signals.task_prerun.connect
def _on_prerun(task_id=None, task=None, args=None, kwargs=None, **_):
    if not _ACTIVE or getattr(task, "name", None) not in _redelivered:
        return
    request = task.request
    message = {
        "name": task.name,
        "args": list(args or ()),
        "kwargs": dict(kwargs or {}),
        "headers": {k: v for k, v in (getattr(request, "headers", None) or {}).items() if _jsonable(v)},
        "queue": (getattr(request, "delivery_info", None) or {}).get("routing_key"),
    }
    if not _jsonable(message) or len(json.dumps(message)) > _MESSAGE_CAP:
        message.update(args=None, kwargs=None, note="arguments too large or not JSON: not kept")
    emit(MESSAGE, task_id=task_id, message=message)


@signals.task_failure.connect
def _on_failure(task_id=None, exception=None, **_):
    if _ACTIVE and type(exception).__name__ == "WorkerLostError":
        emit(LOST, task_id=task_id)


@signals.task_revoked.connect
def _on_revoked(request=None, **_):
    if _ACTIVE and request is not None:
        emit(REVOKED, task_id=getattr(request, "id", None))
