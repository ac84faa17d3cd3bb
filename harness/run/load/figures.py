"""A load run's figures while it goes on: the once-a-second sample (queue depth, tasks in flight, the
group's memory), the live view's rates, and what the harness itself costs."""

from __future__ import annotations

import resource
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from oomlab.observe.observers import Observers
from oomlab.probe import procfs
from oomlab.record.histogram import LogHistogram
from oomlab.record.load import HarnessCost
from oomlab.record.schema import CeleryEvent
from oomlab.run.load.book import Book
from oomlab.run.load.depth import QueueDepth
from oomlab.run.load.series import Series

HEARTBEATS = 30  # a minute of worker heartbeats (Celery sends one every 2 s)


@dataclass
class LiveFigures:
    elapsed: float
    sent: int
    final: int
    offered_per_s: float | None
    achieved_per_s: float | None
    in_flight: int
    queue_depth: int | None
    end_to_end_p95: float | None
    group_bytes: int | None
    group_file_bytes: int | None  # page cache within group_bytes (the worker's log and files it wrote)
    limit_bytes: int
    kills: int


def kept_events(events: list[CeleryEvent]) -> Callable[[CeleryEvent], bool]:
    """Which Celery events a load run keeps: what attribution reads (a task lost with its worker, the
    worker's online/offline) and its last HEARTBEATS heartbeats (enough to time a dead worker's
    expiry), so the record does not grow with the tasks sent or with the run's length."""
    beats = [event for event in events if event.type == "worker-heartbeat"]
    recent = {id(event) for event in beats[-HEARTBEATS:]}

    def keep(event: CeleryEvent) -> bool:
        if event.type == "worker-heartbeat":
            return id(event) in recent
        if event.type.startswith("worker-"):
            return True
        return event.type == "task-failed" and "WorkerLostError" in str(event.fields.get("exception", ""))

    return keep


class Figures:
    def __init__(self, book: Book, observers: Observers, depth: QueueDepth, limit_bytes: int):
        self.book, self.observers, self.depth, self.limit_bytes = book, observers, depth, limit_bytes
        self.series = {
            "in_flight": Series("gauge"),
            "queue_depth": Series("gauge"),
            "group_bytes": Series("gauge"),
            "group_unreclaimable_bytes": Series("gauge"),  # less page cache: what a kill is about
        }
        self.checkpoint_cost = LogHistogram()  # CPU seconds per run.checkpoint(): flat in tasks sent, or a defect
        self.recent: deque[tuple[float, int, int]] = deque(maxlen=32)  # (time, sent, final) for live rates
        self.last_depth: int | None = None
        self.cpu_at_start = 0.0
        self.cpu_at_end: float | None = None

    def begin(self) -> None:
        self.cpu_at_start = _cpu()

    def end(self) -> None:
        """The load is over (every task final, or the run stopped): what follows, the report and the
        timeline, costs the same at any rate and takes nothing from the worker's tasks."""
        self.cpu_at_end = _cpu()

    def sample(self, elapsed: float) -> None:
        """Once a second: the series' points, the Celery events pruned, the task stream flushed."""
        self.last_depth = self.depth.read()
        if self.last_depth is not None:
            self.series["queue_depth"].add(elapsed, self.last_depth)
        self.series["in_flight"].add(elapsed, len(self.book.flights))
        sampler = self.observers.sampler
        usage = sampler.latest_usage
        if usage is not None:
            self.series["group_bytes"].add(elapsed, usage)
            self.series["group_unreclaimable_bytes"].add(elapsed, usage - (sampler.latest_file_bytes or 0))
        events = self.observers.events
        if events is not None:
            events.prune(kept_events(events.snapshot()))
        self.book.stream.flush()

    def live(self, kills: int) -> LiveFigures:
        with self.book.lock:
            return self._live(kills)

    def _live(self, kills: int) -> LiveFigures:
        book = self.book
        now = time.monotonic()
        sent = sum(stats.counts["sent"] for stats in book.by_name.values())
        self.recent.append((now, sent, book.final_count))
        window = [point for point in self.recent if now - point[0] <= 5.0]
        first = window[0]
        span = now - first[0]
        total_e2e = LogHistogram()
        for stats in book.by_name.values():
            total_e2e.merge(stats.latency["end_to_end"])
        return LiveFigures(
            elapsed=now - book.start,
            sent=sent,
            final=book.final_count,
            offered_per_s=(sent - first[1]) / span if span >= 1 else None,
            achieved_per_s=(book.final_count - first[2]) / span if span >= 1 else None,
            in_flight=len(book.flights),
            queue_depth=self.last_depth,
            end_to_end_p95=total_e2e.quantile(0.95),
            group_bytes=self.observers.sampler.latest_usage,
            group_file_bytes=self.observers.sampler.latest_file_bytes,
            limit_bytes=self.limit_bytes,
            kills=kills,
        )

    def own_cost(self) -> HarnessCost:
        """What the harness itself costs: oomlab's peak RSS and CPU (this process, not the worker),
        and each checkpoint's time."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return HarnessCost(
            # VmHWM, not ru_maxrss: Linux carries the parent's high-water mark into ru_maxrss across
            # fork and exec, so oomlab started from a large process (a CI runner, a benchmark) read its size
            oomlab_peak_rss_bytes=procfs.status_fields("self", ("VmHWM",)).get("VmHWM", 0),
            oomlab_cpu_seconds=round(usage.ru_utime + usage.ru_stime, 3),
            # from the first send to the load's end: the cost that grows with tasks and shares the worker's
            # cores, without start-up (imports, the worker's launch) or the report drawn after it
            load_cpu_seconds=round((self.cpu_at_end or usage.ru_utime + usage.ru_stime) - self.cpu_at_start, 3),
            checkpoint_seconds=self.checkpoint_cost.summary(),
            in_memory="per task name, plus the tasks in flight",
            peak_rss_basis="VmHWM of the oomlab process, to the last record written (the report included)",
        )


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
