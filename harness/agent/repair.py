"""The repairs, on a thread of their own so that detection never waits on the network:

- a killed task that Celery will not redeliver is marked FAILURE in the app's result backend with an
  `OOMKilled` error (peak, limit, pid) and a `task-failed` event is sent, as the worker would have;
- a task that will be redelivered (acks_late + reject_on_worker_lost) has its kill counted where
  every replica sees it; at the cap it is revoked, its message dead-lettered and marked FAILURE.

Celery writes after the agent in two cases, and the probe says when: the worker's main process
stores WorkerLostError once it notices its child died, and a worker that drops a revoked message
stores REVOKED. The agent writes its error again after each, so the task's last state is the truth.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from oomlab.agent.kills import Kill
from oomlab.agent.store import Store, redis_url
from oomlab.probe import agent_hooks


class OOMKilled(Exception):
    """What a task killed by the OOM killer (or SIGKILL) failed with, as the agent stores it."""


class Repairer(threading.Thread):
    def __init__(self, max_redeliveries: int, report: Callable[[str], None]):
        super().__init__(name="oomlab-agent-repair", daemon=True)
        self.max_redeliveries = max_redeliveries
        self.report = report  # one sentence to the agent's log
        self.inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.app: Any = None
        self.hostname: str | None = None
        self.store: Store | None = None
        self.failed: dict[str, str] = {}  # task id -> the error message stored (written again after Celery's own)
        self.done: list[Kill] = []  # kills handled, newest last (bounded)
        self.listeners: list[Callable[[Kill], None]] = []  # metrics and alerts, after the repair
        self._dispatcher: Any = None

    # --- from the watcher's thread: never blocks ------------------------------------------------
    def kill(self, kill: Kill) -> None:
        self.inbox.put(("kill", kill))

    def event(self, line: Any) -> None:
        self.inbox.put(("event", line))

    def stop(self) -> None:
        self.inbox.put(("stop", None))
        self.join(timeout=5)

    # --- the thread ------------------------------------------------------------------------------
    def run(self) -> None:
        while True:
            what, item = self.inbox.get()
            if what == "stop":
                return
            try:
                if what == "kill":
                    self._repair(item)
                else:
                    self._on_event(item)
            except Exception as exc:  # a backend or broker down: said, and the next kill is tried afresh
                self.report(f"could not repair after a kill: {exc!r}")
                self._dispatcher = None

    def _on_event(self, line: dict) -> None:
        ev = line["ev"]
        if ev == agent_hooks.APP:
            self._connect(line)
        elif ev == agent_hooks.LOST and line.get("task_id") in self.failed:
            self._mark_failure(line["task_id"], self.failed[line["task_id"]], event=False)
        elif ev == agent_hooks.REVOKED and line.get("task_id"):
            task_id = line["task_id"]
            if task_id in self.failed:
                self._mark_failure(task_id, self.failed[task_id], event=False)
            elif self.store is not None and self.store.is_dead(task_id):  # dead-lettered by another replica
                entry = self.store.dead().get(task_id) or {}
                self._mark_failure(task_id, entry.get("error") or "OOMKilled: dead-lettered", event=False)

    def _connect(self, line: dict) -> None:
        from celery import Celery

        conf = dict(line.get("conf") or {})
        app = Celery(line.get("main") or "celery", set_as_current=False)
        app.conf.update(conf)
        self.app, self.hostname = app, line.get("hostname")
        url = redis_url(conf)
        if url is not None:
            self.store = Store(url, line.get("main") or "celery")
        else:
            self.report("neither the result backend nor the broker is Redis: the delivery cap is off")
        try:
            app.backend.get_state("oomlab-agent-warm-up")  # the connection is open before the first kill
        except Exception as exc:
            self.report(f"the result backend is unreachable for now ({type(exc).__name__}); repairs retry at each kill")

    def _repair(self, kill: Kill) -> None:
        if kill.task_id is None or self.app is None:
            self._done(kill)
            return
        error = f"OOMKilled: {kill.describe()}"
        if kill.redelivered:
            if self.store is None:
                kill.outcome.append("redelivered (no shared store: not counted)")
                self._done(kill)
                return
            count = self.store.count_kill(kill.task_id, kill.as_json())
            kill.outcome.append(f"counted {count} of {self.max_redeliveries}")
            if count < self.max_redeliveries:
                self._done(kill)
                return
            self.app.control.revoke(kill.task_id)
            error = f"{error}; dead-lettered after {count} OOM kills"
            self.store.dead_letter(kill.task_id, kill.message, self.store.kills(kill.task_id), error)
            kill.outcome.append("dead_lettered")
        self.failed[kill.task_id] = error
        if len(self.failed) > 10000:
            self.failed.pop(next(iter(self.failed)))
        self._mark_failure(kill.task_id, error, event=True)
        kill.outcome.append("marked_failure")
        self._done(kill)

    def _mark_failure(self, task_id: str, error: str, event: bool) -> None:
        exc = OOMKilled(error)
        self.app.backend.mark_as_failure(task_id, exc, request=None)
        if event:
            if self._dispatcher is None:
                self._dispatcher = self.app.events.Dispatcher(
                    self.app.connection_for_write(), hostname=self.hostname, enabled=True
                )
            self._dispatcher.send("task-failed", uuid=task_id, exception=repr(exc), traceback=None)

    def _done(self, kill: Kill) -> None:
        self.done.append(kill)
        del self.done[:-1000]
        self.report(f"{kill.describe()}; {', '.join(kill.outcome) or 'nothing to repair'}")
        for listener in self.listeners:
            try:
                listener(kill)
            except Exception as exc:
                self.report(f"a kill's listener failed: {exc!r}")
