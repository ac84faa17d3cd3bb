"""The load run's book of tasks: each one in flight (sent, not final yet), and what became of those
that went final, streamed to tasks.jsonl and counted per task name, then forgotten. Every other part
of the driver (scheduling, following, finishing, the live figures) writes here or reads from here."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from oomlab.assemble.needs import needs_of, rise_to_kill, tree_above_start
from oomlab.config.scenario import TaskCall
from oomlab.record.histogram import LogHistogram
from oomlab.record.schema import KillRecord, Outcome
from oomlab.record.stream import TaskLine, TaskStream
from oomlab.run.load.sender import Send
from oomlab.run.load.stats import NameStats

ENDED_KEPT = 4096  # worker-sent task ids remembered after their end (a redelivery's prerun comes late)


@dataclass(slots=True)
class Flight:
    """A task sent and not yet final: all a load run holds per task."""

    id: str
    name: str
    label: str
    args: tuple[Any, ...]
    sent: float
    due: float | None
    started: float | None = None  # its first prerun (queue wait ends here)
    last_start: float | None = None  # its latest prerun (run time starts here)
    pid: int | None = None
    start_rss: int | None = None
    attempts: int = 0
    lost: bool = False  # the child running it died: the result backend says what became of it
    start_kinds: dict[str, int] | None = None  # its leaf's memory by kind at its latest prerun
    tree_start: int | None = None  # its leaf's usage at its latest prerun (the tree peak's base)
    shared: bool = False  # it ran in a process that runs tasks side by side (no tree of its own)
    # a task the worker sent itself (a chord's parts and callback, a task sent from a task): Celery's links
    parent_id: str | None = None
    root_id: str | None = None
    group_id: str | None = None
    by_worker: bool = False


class Book:
    """`lock` guards what the sending threads write (`sent`) against the readers of the statistics."""

    def __init__(self, run_dir: str, sending_s: float, killed: Callable[[str], KillRecord | None]):
        self.sending_s = sending_s
        self.killed = killed  # a killed task's kill as the kernel reported it (the record's kills)
        self.lock = threading.Lock()
        self.start = time.monotonic()  # when the load began: every figure's time is seconds after it
        self.flights: dict[str, Flight] = {}
        self.by_name: dict[str, NameStats] = {}
        self.lateness = LogHistogram()
        self.submitted = 0
        self.started_count = self.final_count = 0
        self.sent_in_window = 0  # sends that happened within the shape's duration (a late sender has fewer)
        self.sent_in_window_by_name: Counter[str] = Counter()
        self.max_above_start = 0  # the largest exact peak above a task's start: a task's transient
        self.above_start = LogHistogram()  # exact peaks above start, all names
        # what a limit must hold, as a plan run's summary has it: exact trees, needs and page cache
        self.tree_above_start = LogHistogram()
        self.needs = LogHistogram()
        self.page_cache = LogHistogram()
        self.outcomes: Counter[str] = Counter()
        # each exception type among the failed tasks: how many, and the first one's name and message
        self.failures: dict[str, tuple[int, str, str]] = {}
        self.stream = TaskStream(run_dir)
        self.by_worker_in_flight = 0
        self._by_worker_ended: dict[str, None] = {}  # the latest ones, bounded: a late line does not open them again

    @property
    def own_in_flight(self) -> int:
        """The tasks in flight that the load sent (a closed loop keeps these at its number)."""
        return len(self.flights) - self.by_worker_in_flight

    def open(self, call: TaskCall, due: float | None) -> Send:
        """`call` as a flight, which exists before the worker can report it, and its send."""
        task_id = str(uuid.uuid4())
        flight = Flight(task_id, call.task, call.label, call.args, time.monotonic(), due)
        self.flights[task_id] = flight
        if call.task not in self.by_name:
            with self.lock:
                self.by_name[call.task] = NameStats()
        self.submitted += 1
        return Send(task_id, call, due, lambda began: setattr(flight, "sent", began))

    def adopt(
        self, task_id: str, name: str, at: float, links: tuple[str | None, str | None, str | None]
    ) -> Flight | None:
        """A task the worker sent itself (`links`: parent, root and group id) as a flight of the load,
        followed to its end like the load's own; None when it is already followed or ended."""
        if task_id in self.flights or task_id in self._by_worker_ended:
            return None
        parent, root, group = links
        flight = Flight(task_id, name, "", (), at, None, parent_id=parent, root_id=root, group_id=group, by_worker=True)
        self.flights[task_id] = flight
        self.by_worker_in_flight += 1
        with self.lock:
            stats = self.by_name.setdefault(name, NameStats())
            stats.sent(at - self.start)
            stats.counts["sent_by_tasks"] += 1
            if at - self.start <= self.sending_s:
                self.sent_in_window_by_name[name] += 1  # its name's arrivals (the load's own offered rate is apart)
        return flight

    def sent(self, name: str, began: float, due: float | None) -> None:
        """A publish went through (called on a sending thread, under the lock)."""
        self.by_name[name].sent(began - self.start)
        if began - self.start <= self.sending_s:
            self.sent_in_window += 1
            self.sent_in_window_by_name[name] += 1
        if due is not None:
            self.lateness.record(began - self.start - due)

    def work_waiting(self, backlog: int | None) -> bool:
        """A task sent and not started among the oldest in flight, or messages waiting in the queue."""
        oldest = itertools.islice(self.flights.values(), 0, 64)
        return any(flight.started is None for flight in oldest) or bool(backlog)

    def final(
        self,
        flight: Flight,
        outcome: Outcome,
        state: str | None,
        exception: str | None,
        end: float | None,
        peak: int | None,
        end_kinds: dict[str, int] | None = None,
        tree: tuple[int | None, bool] = (None, False),
        highest: tuple[int, int] | None = None,
    ) -> None:
        """`flight` became final: its line into the stream, its figures into its name's, and it is
        forgotten. `tree`: its leaf's peak and whether the kernel measured it exactly (the postrun's);
        `highest`: its leaf's (unreclaimable, page cache) at their highest sampled during it."""
        exact = peak is not None
        kill = self.killed(flight.id) if end_kinds is None else None
        if peak is None and outcome == "killed" and kill is not None:
            peak = kill.rss_bytes
        latencies = {
            "queue_wait": None if flight.started is None else flight.started - flight.sent,
            "run_time": None if flight.last_start is None or end is None else end - flight.last_start,
            "end_to_end": None if end is None or flight.started is None else end - flight.sent,
        }
        start_rss = flight.start_rss
        rise = rise_to_kill(kill.kinds, start_rss) if kill is not None and kill.kinds else None
        needs = needs_of(flight.start_kinds, highest, end_kinds, rise)
        tree_growth, tree_exact = tree_above_start(tree[0], flight.tree_start, tree[1], flight.shared)
        line = TaskLine(
            id=flight.id,
            name=flight.name,
            label=flight.label,
            args=list(flight.args),
            sent_mono=flight.sent,
            due_s=flight.due,
            started_mono=flight.started,
            finished_mono=end,
            queue_wait_s=latencies["queue_wait"],
            run_time_s=latencies["run_time"],
            end_to_end_s=latencies["end_to_end"],
            outcome=outcome,
            state=state,
            exception=exception,
            pid=flight.pid,
            attempts=flight.attempts,
            start_rss_bytes=start_rss,
            peak_rss_bytes=peak,
            peak_above_start_bytes=peak - start_rss if peak is not None and start_rss is not None else None,
            peak_is_exact=exact,
            needs_above_start_bytes=needs.above_start if needs else None,
            page_cache_above_start_bytes=needs.page_cache_above_start if needs else None,
            needs_note=needs.note if needs else None,
            tree_peak_above_start_bytes=tree_growth,
            tree_peak_is_exact=tree_exact,
            parent_id=flight.parent_id,
            root_id=flight.root_id,
            group_id=flight.group_id,
            sent_by="worker" if flight.by_worker else "run",
        )
        self.stream.write(line)
        if exact and peak is not None and start_rss is not None:
            self.max_above_start = max(self.max_above_start, peak - start_rss)
            self.above_start.record(peak - start_rss)
        if tree_exact and tree_growth is not None:
            self.tree_above_start.record(tree_growth)
        if needs is not None:
            self.needs.record(needs.above_start)
            self.page_cache.record(needs.page_cache_above_start)
        self.outcomes[outcome] += 1
        if outcome == "failed" and exception:
            kind, _, message = exception.partition(": ")
            count, first, first_name = self.failures.get(kind, (0, message, flight.name))
            self.failures[kind] = (count + 1, first, first_name)
        at = (end if end is not None else time.monotonic()) - self.start
        with self.lock:
            self.by_name[flight.name].final(outcome, at, latencies, peak if exact else None, line)
        self.final_count += 1
        del self.flights[flight.id]
        if flight.by_worker:
            self.by_worker_in_flight -= 1
            self._by_worker_ended[flight.id] = None
            if len(self._by_worker_ended) > ENDED_KEPT:
                del self._by_worker_ended[next(iter(self._by_worker_ended))]
