"""The probe as `oomlab agent` loads it into a production worker: only what the agent uses, sent on
the agent's socket (OOMLAB_PROBE_FD) and only when that socket is there. The lab's recorder (every
figure of every task, for a report) is not loaded: per task this costs one clear_refs write at the
start and one peak read and one read of the leaf's kill count at the end, plus a datagram each (measured in docs/agent.md).

- in each pool child: its start (and its leaf memory cgroup under an agent-made group, so a task's
  peak covers the programs it starts), its clean exit, and per task the task in flight and its exact
  peak (the leaf's, else the process's VmHWM, reset at the task's start) and the OOM kills its leaf
  counted by its end (a program it started may be killed and gone before the agent reads the kill);
- at worker start, how to reach the app's result backend and broker (a filtered copy of its
  settings, over the local socket only) and which tasks are redelivered after a lost worker
  (acks_late and reject_on_worker_lost), so the agent repairs what Celery will not;
- at a redelivered task's start, its message (name, args, kwargs, headers), for the dead-letter list
  (told by the task's own flags: the pool's first children fork before the worker is ready);
- in the main process, Celery's own late writes the agent must correct: a WorkerLostError stored
  after the agent's OOMKilled, and REVOKED stored when a dead-lettered message is dropped.
"""

from __future__ import annotations

import json
import os

from celery import signals
from oomlab.probe import channel, procfs
from oomlab.probe.agent_events import APP, LOST, MESSAGE, REVOKED
from oomlab.probe.channel import claim_socket, emit
from oomlab.probe.events import CHILD_INIT, CHILD_SHUTDOWN, POSTRUN, PRERUN
from oomlab.probe.task_tree import TaskTree

_ACTIVE = claim_socket()  # the agent's socket, close-on-exec and out of the environment from here on
_CONF_PREFIXES = ("result_", "broker_", "redis_", "event_", "database_", "mongodb_", "cache_", "s3_")
_CONF_KEYS = ("accept_content", "task_serializer", "timezone", "enable_utc", "task_default_queue")
_MESSAGE_CAP = 256 * 1024  # a larger message is dead-lettered without its arguments


class _Peaks:
    """This process's VmHWM, reset per task with clear_refs (files kept open, re-opened after a fork),
    and the pool child's leaf. Tasks that share the worker's main process (solo, threads, gevent)
    reset it only when none other runs, and their peak is given only when they ran alone."""

    def __init__(self) -> None:
        self.main_pid: int | None = None
        self.own = procfs.OwnFiles()
        self.tree = TaskTree()
        self.in_flight = 0
        self.alone = True

    def start(self) -> None:
        own = self.own.mine()
        shared = own.pid == self.main_pid
        if shared:
            self.in_flight += 1
            self.alone = self.in_flight == 1
        if self.alone or not shared:
            self.alone = own.reset_peak()
        self.tree.reset_peak_only()

    def end(self) -> dict:
        own = self.own.mine()
        tree_peak = self.tree.exact_peak()
        shared = own.pid == self.main_pid
        if shared:
            self.in_flight -= 1
            self.alone = self.alone and self.in_flight == 0
        peak = None
        if tree_peak is None and self.alone:  # the leaf's exact peak covers the process: no /proc read
            peak = own.status(("VmHWM",)).get("VmHWM")
        return {
            "tree_peak": tree_peak,
            "tree_peak_exact": tree_peak is not None,
            "peak_rss": peak,
            "leaf_kills": self.tree.oom_kills(),
        }


_peaks = _Peaks()


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


@signals.worker_init.connect
def _on_init(**_):
    _peaks.main_pid = os.getpid()
    if _ACTIVE:
        _keep_channel_on_restart()


def _keep_channel_on_restart() -> None:
    """Celery restarts on HUP by closing every descriptor but stdio and exec'ing itself (same pid, new
    image, same environment): its close is made to keep the agent's socket, inheritable and named in the
    environment again, so the new
    image's probe still reaches the agent (else its pool children go unannounced and their kills
    unattributed)."""
    from celery import platforms
    from celery.apps import worker as celery_worker

    restart = getattr(celery_worker, "_reload_current_worker", None)
    fd = channel.descriptor()
    if restart is None or fd is None:
        return
    close_open_fds = platforms.close_open_fds

    def close_keeping_probe(keep=None):
        close_open_fds([*(keep or ()), fd])

    def restart_keeping_probe():
        os.set_inheritable(fd, True)
        os.environ[channel.FD_ENV] = str(fd)  # claim_socket took it out; the new image claims it again
        platforms.close_open_fds = close_keeping_probe  # only now: the exec follows
        restart()

    celery_worker._reload_current_worker = restart_keeping_probe


@signals.worker_ready.connect
def _on_ready(sender=None, **_):
    if not _ACTIVE:
        return
    app = sender.app
    redelivered = sorted(
        name for name, task in app.tasks.items() if not name.startswith("celery.") and _is_redelivered(task)
    )
    emit(
        APP,
        main=app.main,
        hostname=sender.hostname,
        conf=_settings(app),
        redelivered=redelivered,
        concurrency=_pool_size(sender),
        queues=_queues(sender),
    )


def _queues(consumer) -> list[str] | None:
    """The queues the worker consumes (its -Q, else the app's default), for the fleet's hello."""
    try:
        return sorted(str(queue.name) for queue in consumer.task_consumer.queues)
    except Exception:
        return None


def _pool_size(consumer) -> int | None:
    """The pool's size as the worker runs it (-c, the app's setting, or the CPU count)."""
    for value in (getattr(getattr(consumer, "pool", None), "limit", None), getattr(consumer, "concurrency", None)):
        if isinstance(value, int):
            return value
    controller = getattr(consumer, "controller", None)
    value = getattr(controller, "concurrency", None)
    return value if isinstance(value, int) else None


@signals.worker_process_init.connect
def _on_child_init(**_):
    if _ACTIVE:
        emit(CHILD_INIT, ppid=os.getppid(), leaf=_peaks.tree.make())


@signals.worker_process_shutdown.connect
def _on_child_shutdown(exitcode=None, **_):
    if _ACTIVE:
        emit(CHILD_SHUTDOWN, exitcode=exitcode)


@signals.task_prerun.connect
def _on_prerun(task_id=None, task=None, args=None, kwargs=None, **_):
    if not _ACTIVE:
        return
    name = getattr(task, "name", None)
    _peaks.start()
    request = getattr(task, "request", None)  # Celery's links: a task sent by a task names its sender
    emit(
        PRERUN,
        task_id=task_id,
        name=name,
        parent_id=getattr(request, "parent_id", None),
        root_id=getattr(request, "root_id", None),
        group_id=getattr(request, "group", None),
    )
    if _is_redelivered(task):
        _message(task_id, task, args, kwargs)


@signals.task_postrun.connect
def _on_postrun(task_id=None, task=None, state=None, **_):
    if _ACTIVE:
        emit(POSTRUN, task_id=task_id, name=getattr(task, "name", None), state=state, **_peaks.end())


def _is_redelivered(task) -> bool:
    """The task's own flags, not the set sent at worker_ready: the pool's first children are forked
    before it, and a poison task's first deliveries run in them."""
    return bool(getattr(task, "acks_late", False) and getattr(task, "reject_on_worker_lost", False))


def _message(task_id, task, args, kwargs) -> None:
    request = task.request
    args, kwargs = (() if args is None else args), ({} if kwargs is None else kwargs)
    shaped = isinstance(args, list | tuple) and isinstance(kwargs, dict)  # a raw message may hold anything
    message = {
        "name": task.name,
        "args": list(args) if shaped else None,
        "kwargs": dict(kwargs) if shaped else None,
        "headers": {k: v for k, v in (getattr(request, "headers", None) or {}).items() if _jsonable(v)},
        "queue": (getattr(request, "delivery_info", None) or {}).get("routing_key"),
    }
    if message["args"] is None:
        message["note"] = "its arguments were not a list and a mapping, as Celery's own messages are"
    elif not _jsonable(message):
        message.update(args=None, kwargs=None, note="its arguments are not JSON, and only JSON is kept")
    elif (size := len(json.dumps(message))) > _MESSAGE_CAP:
        note = f"its message took {size} bytes, over the {_MESSAGE_CAP} kept: its arguments were not kept"
        message.update(args=None, kwargs=None, note=note)
    emit(MESSAGE, task_id=task_id, message=message)


@signals.task_failure.connect
def _on_failure(task_id=None, exception=None, **_):
    if _ACTIVE and type(exception).__name__ == "WorkerLostError":
        emit(LOST, task_id=task_id)


@signals.task_revoked.connect
def _on_revoked(request=None, **_):
    if _ACTIVE and request is not None:
        emit(REVOKED, task_id=getattr(request, "id", None))
