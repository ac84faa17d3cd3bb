"""Poison messages end: a task id the kernel OOM-killed `max_oom_redeliveries` times is revoked, so a
message that acks_late + reject_on_worker_lost hand back to the broker after every kill stops taking
a pool slot and the run can finish."""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Protocol

from oomlab.record.schema import PoisonRecord, RunRecord

if TYPE_CHECKING:
    from oomlab.config.options import RunConfig
    from oomlab.observe.observers import Observers


class RunState(Protocol):
    """What stopping a poison message reads of a run (the run's state satisfies it)."""

    config: RunConfig
    app: Any
    record: RunRecord
    observers: Observers | None
    poison_guard: PoisonGuard | None

    def collect(self) -> None: ...


# Celery's remote control: the worker keeps the id in its revoked set and discards (acks) the next
# delivery, marking it REVOKED; this works on every broker Celery's control commands reach
STOPPED_BY = "revoked"


def poisoned_ids(run: RunState) -> frozenset[str]:
    """Task ids the run stopped as poison: on record, or revoked by the guard a moment ago (the record
    has them at its next assembly; a task that goes final meanwhile is poison all the same)."""
    revoked = run.poison_guard.revoked if run.poison_guard else {}
    return frozenset(p.task_id for p in run.record.poison) | frozenset(revoked)


def stop_poison(run: RunState) -> list[PoisonRecord]:
    """Revoke each task id killed `max_oom_redeliveries` times and not stopped yet; the new records."""
    limit = run.config.max_oom_redeliveries
    if not limit or run.app is None:
        return []
    kills = Counter(k.task_id for k in run.record.kills if k.task_id and k.role != "descendant")
    stopped = {p.task_id for p in run.record.poison}
    names = {k.task_id: k.task_name for k in run.record.kills if k.task_id}
    revoked = run.poison_guard.revoked if run.poison_guard else {}
    found = []
    for task_id, count in kills.items():
        if count >= limit and task_id not in stopped:
            at = revoked.get(task_id)
            if at is None:
                run.app.control.revoke(task_id)
                at = time.monotonic()
            found.append(PoisonRecord(task_id, names.get(task_id) or "?", count, at, STOPPED_BY))
    for record in run.record.poison:  # a later kill (a delivery already under way): revoke again, count it
        if kills[record.task_id] > record.kills:
            record.kills = kills[record.task_id]
            run.app.control.revoke(record.task_id)
    run.record.poison.extend(found)
    return found


class PoisonGuard:
    """Revokes a task id the moment the monitor names its `limit`-th kill: Celery hands a killed
    acks_late message back and starts it again within about 100 ms, sooner than the record is
    assembled again. The revoke is sent from a thread of its own, so the monitor never waits on the
    broker; `stop_poison` keeps the record and revokes whatever this missed."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit
        self.kills: Counter[str] = Counter()
        self.revoked: dict[str, float] = {}  # task id -> when its revoke was asked for
        self._pending: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._send, name="oomlab-poison", daemon=True)
        self._thread.start()

    def named(self, pid: int, task_id: str | None, own: bool) -> None:
        """The monitor's listener: a kill of a task's own pool process counts; a program it started does not."""
        if task_id is None or not own:
            return
        self.kills[task_id] += 1
        if self.kills[task_id] >= self.limit and task_id not in self.revoked:
            self.revoked[task_id] = time.monotonic()
            self._pending.put(task_id)

    def _send(self) -> None:
        while (task_id := self._pending.get()) is not None:
            try:
                self.app.control.revoke(task_id)
            except Exception:  # the broker is away: stop_poison revokes it at the next assembly
                self.revoked.pop(task_id, None)

    def stop(self) -> None:
        self._pending.put(None)
        self._thread.join(timeout=5)


class KillWatch:
    """Reacts to a new OOM kill between checkpoints: the record is assembled again at once, so a
    poison message is revoked before its next delivery starts."""

    def __init__(self) -> None:
        self.seen = 0
        self.until = 0.0

    def check(self, run: RunState) -> None:
        if run.observers is None or not run.config.max_oom_redeliveries:
            return
        count, now = len(run.observers.monitor.obs.oom_events), time.monotonic()
        if count > self.seen:
            # the kernel's line and the process's exit name the task a moment after the counter rose
            self.seen, self.until = count, now + FOLLOW_KILL_SECONDS
        if now < self.until:
            run.collect()


FOLLOW_KILL_SECONDS = 0.6
