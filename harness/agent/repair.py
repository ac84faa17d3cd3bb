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
from collections import Counter
from collections.abc import Callable
from typing import Any

from oomlab.agent.kills import Kill
from oomlab.agent.store import Store, redis_url
from oomlab.probe import agent_events
from oomlab.worker.reach import unreachable

_NO_MESSAGE = (
    "none of its killed deliveries sent the agent its message (the probe's datagram was dropped, "
    "or the worker runs without the agent's probe)"
)


class OOMKilled(Exception):
    """What a task killed by the OOM killer (or SIGKILL) failed with, as the agent stores it."""


# what a repair's tags (kept as they are in the webhook's JSON, `repaired`) say in the agent's log
SAID = {
    "marked_failure": "marked FAILURE in the result backend, task-failed sent",
    "dead_lettered": "dead-lettered (`oomlab replay` sends it again)",
}


class Repairer(threading.Thread):
    def __init__(self, max_redeliveries: int, report: Callable[[str], None]):
        super().__init__(name="oomlab-agent-repair", daemon=True)
        self.max_redeliveries = max_redeliveries
        self.report = report  # one sentence to the agent's log
        self.inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.app: Any = None
        self.settings: dict | None = None  # the probe's agent_app line: the app's settings
        self.hostname: str | None = None
        self.store: Store | None = None
        self.failed: dict[str, str] = {}  # task id -> the error message stored (written again after Celery's own)
        self.done: list[Kill] = []  # kills handled, newest last (bounded)
        self.listeners: list[Callable[[Kill], None]] = []  # metrics and alerts, after the repair
        self.tally: Counter[str] = Counter()  # kills handled, and each repair done: the exit summary
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
                elif what == "announce":
                    self._announce(*item)
                else:
                    self._on_event(item)
            except Exception as exc:  # a backend or broker down: said, and the next kill is tried afresh
                self.report(f"could not repair after a kill: {exc!r}")
                self._dispatcher = None

    def _on_event(self, line: dict) -> None:
        ev = line["ev"]
        if ev == agent_events.APP:
            self._learn(line)
        elif ev == agent_events.LOST and line.get("task_id") in self.failed:
            self._mark_failure(line["task_id"], self.failed[line["task_id"]], event=False)
        elif ev == agent_events.REVOKED and line.get("task_id"):
            task_id = line["task_id"]
            if task_id in self.failed:
                self._mark_failure(task_id, self.failed[task_id], event=False)
            elif self._connect() and self.store is not None and self.store.is_dead(task_id):
                entry = self.store.dead().get(task_id) or {}  # dead-lettered by another replica
                self._mark_failure(task_id, entry.get("error") or "OOMKilled: dead-lettered", event=False)

    def _learn(self, line: dict) -> None:
        """The worker is ready: its app's settings, kept until a repair needs them. Celery, kombu and
        redis are imported at the first repair, not now (they would triple the agent's memory for a
        worker that may never be killed), unless the delivery cap watches one of the app's tasks: a
        poison message is redelivered within tens of milliseconds of its kill, faster than Celery
        imports on a busy machine, so the cap is armed now. The backend's port is tried now, so an
        unreachable one is said at start."""
        self.settings = line
        conf = line.get("conf") or {}
        self.hostname = line.get("hostname")
        if redis_url(conf) is None:
            self.report("neither the result backend nor the broker is Redis: the delivery cap is off")
        elif line.get("redelivered") and self._connect():
            _ = self.app.backend, self.app.control  # their modules too: the cap's write and its revoke
        problem = unreachable(conf.get("result_backend"))
        if problem is not None:
            self.report(f"the result backend is unreachable for now ({problem}); repairs retry at each kill")

    def _connect(self) -> bool:
        """The app (and the shared store) made from the worker's settings, at the first repair."""
        if self.app is not None:
            return True
        if self.settings is None:
            return False
        from celery import Celery

        conf = dict(self.settings.get("conf") or {})
        main = self.settings.get("main") or "celery"
        app = Celery(main, set_as_current=False)
        app.conf.update(conf)
        url = redis_url(conf)
        self.store = Store(url, main) if url is not None else None
        self.app = app
        return True

    def _repair(self, kill: Kill) -> None:
        if kill.role == "descendant":  # the task lives on and may handle its program's death
            kill.outcome.append("not marked FAILURE: the task may handle its program's death")
            self._done(kill)
            return
        if kill.task_id is None or not self._connect():
            self._done(kill)
            return
        error = f"OOMKilled: {kill.describe()}"
        if kill.redelivered:
            if self.store is None:
                kill.outcome.append("redelivered (no shared store: not counted)")
                self._done(kill)
                return
            count = self.store.count_kill(kill.task_id, kill.as_json(), kill.message)
            kill.outcome.append(f"counted {count} of {self.max_redeliveries}")
            if count < self.max_redeliveries:
                self._done(kill)
                return
            self.app.control.revoke(kill.task_id)
            error = f"{error}; dead-lettered after {count} OOM kills"
            message = kill.message or self.store.message(kill.task_id)  # any delivery's, on any replica
            kills = self.store.kills(kill.task_id)
            self.store.dead_letter(kill.task_id, message, kills, error, None if message else _NO_MESSAGE)
            kill.outcome.append("dead_lettered")
        self.failed[kill.task_id] = error
        if len(self.failed) > 10000:
            self.failed.pop(next(iter(self.failed)))
        self._mark_failure(kill.task_id, error, event=True)
        kill.outcome.append("marked_failure")
        self._done(kill)

    def _mark_failure(self, task_id: str, error: str, event: bool) -> None:
        exc = OOMKilled(error.removeprefix("OOMKilled: "))  # its type is already shown beside its message
        self.app.backend.mark_as_failure(task_id, exc, request=None)
        if event:  # queued behind what came meanwhile: Celery's late write is corrected before this
            self.inbox.put(("announce", (task_id, repr(exc))))

    def _announce(self, task_id: str, exception: str) -> None:
        """task-failed, as the worker would have sent it (Flower and event consumers)."""
        if self._dispatcher is None:
            self._dispatcher = self.app.events.Dispatcher(
                self.app.connection_for_write(), hostname=self.hostname, enabled=True
            )
        self._dispatcher.send("task-failed", uuid=task_id, exception=exception, traceback=None)

    def _done(self, kill: Kill) -> None:
        self.done.append(kill)
        del self.done[:-1000]
        named = f" (named from the {kill.named_by}, before its exit)" if kill.named_by else ""
        self.tally.update(["kills", *(tag for tag in kill.outcome if tag in SAID)])
        said = ", ".join(SAID.get(tag, tag) for tag in kill.outcome)
        self.report(f"{kill.describe()}{named}; {said or 'nothing to repair'}")
        for listener in self.listeners:
            try:
                listener(kill)
            except Exception as exc:
                self.report(f"a kill's listener failed: {exc!r}")
