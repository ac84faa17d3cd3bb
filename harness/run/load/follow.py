"""Following each task in flight: its prerun and postrun from the probe's lines, its pool child's birth
and exit, and, when that child died mid-task, its state in the result backend."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from oomlab.assemble.analysis import EX_RECYCLE
from oomlab.observe.monitor import Monitor
from oomlab.probe.events import CHILD_INIT, CHILD_SHUTDOWN, POSTRUN, PRERUN, SENT, ProbeLine
from oomlab.record.schema import Outcome
from oomlab.run.load.book import Book, Flight
from oomlab.run.load.replacements import Replacements
from oomlab.run.load.soak import Soak
from oomlab.run.replay import fetch_states

LOST_STATES = ("SUCCESS", "FAILURE", "REVOKED")
EXIT_SETTLE_SECONDS = 0.5  # a child's exit counts as lost only once its shutdown record had time to come


def retain_open(records: list[ProbeLine]) -> list[ProbeLine]:
    """What the monitor keeps of the probe in a load run: records of no task (children's births and
    exits, readiness) and each prerun whose postrun has not come (a task running, or killed)."""
    open_at: dict[tuple[str, int], int] = {}
    closed: set[int] = set()
    for index, record in enumerate(records):
        task_id = record.get("task_id")
        if not task_id:
            continue
        key = (task_id, record["pid"])
        if record["ev"] == PRERUN:
            open_at[key] = index
        elif record["ev"] == POSTRUN:
            closed.add(index)
            if key in open_at:
                closed.add(open_at.pop(key))
    return [r for i, r in enumerate(records) if i not in closed and (not r.get("task_id") or r["ev"] == PRERUN)]


class Follower:
    """`backlog` is the queue's depth as last sampled (work waiting when a child was replaced)."""

    def __init__(
        self,
        book: Book,
        monitor: Monitor,
        app: Any,
        soak: Soak,
        replacements: Replacements,
        backlog: Callable[[], int | None],
        leaf_highest: Callable[[int, float, float], tuple[int, int] | None] = lambda *_: None,
    ):
        self.book, self.monitor, self.app = book, monitor, app
        self.leaf_highest = leaf_highest  # the sampler's: a leaf at its highest within a span, then let go
        self.soak, self.replacements, self.backlog = soak, replacements, backlog
        self.kills_seen = 0
        self._exits_seen: set[int] = set()

    def follow(self) -> None:
        """The probe's lines that came since the last call, and the kills the monitor saw."""
        monitor = self.monitor
        for record in monitor.drain_probe(retain_open):
            event = record["ev"]
            if event == PRERUN:
                self._started(record)
            elif event == POSTRUN:
                self._ended(record)
            elif event == CHILD_INIT:
                self.replacements.child_started(record["pid"])
            elif event == CHILD_SHUTDOWN:
                recycled = record.get("exitcode") == EX_RECYCLE
                self.replacements.child_exited(record["pid"], record["t"], recycled, self._work_waiting())
            elif event == SENT:
                self._sent_by_task(record)
        kills = len(monitor.obs.oom_events)
        if kills > self.kills_seen:
            self.kills_seen = kills
            self.soak.kill_seen(self.book.started_count)

    def _work_waiting(self) -> bool:
        return self.book.work_waiting(self.backlog())

    def _started(self, record: ProbeLine) -> None:
        self.replacements.task_started(record["pid"], record["t"])
        book = self.book
        flight = book.flights.get(record.get("task_id", "")) or self._sent_by_task(record)
        if flight is None:
            return
        if flight.started is None:
            flight.started = record["t"]
            book.started_count += 1
        flight.last_start, flight.pid, flight.start_rss = record["t"], record["pid"], record.get("start_rss")
        flight.start_kinds = record.get("tree_kinds_start")
        flight.tree_start, flight.shared = record.get("tree_start"), bool(record.get("shared_process"))
        flight.attempts += 1
        flight.lost = False

    def _sent_by_task(self, record: ProbeLine) -> Flight | None:
        """A task the worker sent from a task (its `sent` line, or its prerun when that came first) becomes
        a flight of the load: the run waits for it and counts it under its name. A task the load sent
        has no parent and is its own root; it is not taken here."""
        task_id, parent, root = record.get("task_id"), record.get("parent_id"), record.get("root_id")
        if not task_id or not (parent or (root and root != task_id)):
            return None
        links = (parent, root, record.get("group_id"))
        return self.book.adopt(task_id, record.get("name") or "?", record["t"], links)

    def _ended(self, record: ProbeLine) -> None:
        self.soak.observe(record["pid"], record["t"] - self.book.start, record.get("end_rss"))
        flight = self.book.flights.get(record.get("task_id", ""))
        state = record.get("state")
        if flight is None or state not in ("SUCCESS", "FAILURE"):
            return  # RETRY: the same task id runs again
        outcome: Outcome = "succeeded" if state == "SUCCESS" else "failed"
        raised = record.get("exception")  # the probe's `Type: message` of a failed task
        exception = raised if outcome == "failed" and isinstance(raised, str) else None
        tree = (record.get("tree_peak"), bool(record.get("tree_peak_exact")))
        highest = self._highest(flight, record["t"])
        self.book.final(
            flight,
            outcome,
            state,
            exception,
            record["t"],
            record.get("peak_rss"),
            record.get("tree_kinds_end"),
            tree,
            highest,
        )

    def _highest(self, flight: Flight, end: float) -> tuple[int, int] | None:
        """Its leaf at its highest sampled during its latest run (None: no leaf, or not started)."""
        if flight.pid is None or flight.last_start is None:
            return None
        return self.leaf_highest(flight.pid, flight.last_start, end)

    def look_up_lost(self, poisoned: frozenset[str] = frozenset()) -> None:
        """Tasks whose child exited mid-task: Celery marks them failed (WorkerLostError) or the
        broker hands them out again; the result backend says which. A task the run stopped after
        its OOM kills (`poisoned`) ends as poison, whatever state the revoke left."""
        monitor = self.monitor
        with monitor.lock:
            exits = dict(monitor.obs.exits)
        settled = time.monotonic() - EXIT_SETTLE_SECONDS
        for pid in exits.keys() - self._exits_seen:
            if exits[pid] > settled:
                continue  # its own shutdown record (a recycled child's) may not be read yet
            self._exits_seen.add(pid)
            self.replacements.child_exited(pid, exits[pid], False, self._work_waiting())
        book = self.book
        lost = [f for f in book.flights.values() if f.pid in exits and f.last_start and exits[f.pid] >= f.last_start]
        for flight in lost:
            flight.lost = True
        if not lost:
            return
        states = fetch_states(self.app, [flight.id for flight in lost])
        for flight in lost:
            state, exception = states.get(flight.id, (None, None))
            if state in LOST_STATES:
                killed = state != "SUCCESS" and exception is not None and "WorkerLostError" in exception
                outcome: Outcome = "killed" if killed else "succeeded" if state == "SUCCESS" else "failed"
                outcome = "poison" if flight.id in poisoned else outcome
                assert flight.pid is not None  # in `exits`
                end = exits[flight.pid]
                book.final(flight, outcome, state, exception, end, None, highest=self._highest(flight, end))
