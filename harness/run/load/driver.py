"""A load run inside a Run: sends on the shape's schedule, follows each task through the probe's
records, streams each final task to tasks.jsonl and forgets it, and keeps per-name statistics.

The Run calls `drive(run)` in place of its plan replay and `collect(record)` at each checkpoint; to
the rest of the Run the driver looks like a Replay whose task list is always empty (the tasks are in
the stream), so the checkpoint's cost depends on the tasks in flight, not on the tasks sent.
"""

from __future__ import annotations

import dataclasses
import itertools
import resource
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from oomlab.assemble.analysis import EX_RECYCLE
from oomlab.config.load_mix import call_source, sent_names
from oomlab.config.load_shapes import LoadShape
from oomlab.config.routing import class_tasks
from oomlab.probe.events import CHILD_INIT, CHILD_SHUTDOWN, POSTRUN, PRERUN
from oomlab.record.histogram import LogHistogram
from oomlab.record.load import HarnessCost
from oomlab.record.schema import CeleryEvent, Outcome
from oomlab.record.stream import TASKS_FILE, TaskLine, TaskStream
from oomlab.run.hooks import RunHook
from oomlab.run.load.depth import QueueDepth
from oomlab.run.load.replacements import Replacements
from oomlab.run.load.sender import Send, Sender
from oomlab.run.load.series import Series
from oomlab.run.load.soak import Soak
from oomlab.run.load.stats import NameStats
from oomlab.run.registered import check_registered
from oomlab.run.replay import fetch_states
from oomlab.run.restart import GONE_FOR_GOOD_SECONDS, restart_worker
from oomlab.run.view import RunView

FOLLOW_SECONDS = 0.02  # the monitor reads the probe every 20 ms
STATE_POLL_SECONDS = 0.25  # how often a task whose child died is looked up in the result backend
SAMPLE_SECONDS = 1.0
PROGRESS_SECONDS = 0.5
DRAIN_SECONDS = 60.0  # after the schedule ends, how long the backlog may take to drain (--timeout)
LOST_STATES = ("SUCCESS", "FAILURE", "REVOKED")
EXIT_SETTLE_SECONDS = 0.5  # a child's exit counts as lost only once its shutdown record had time to come
HEARTBEATS = 30  # a minute of worker heartbeats (Celery sends one every 2 s)


@dataclass(slots=True)
class Flight:
    """A task sent and not yet final: all a load run holds per task."""

    id: str
    name: str
    label: str
    args: tuple
    sent: float
    due: float | None
    started: float | None = None  # its first prerun (queue wait ends here)
    last_start: float | None = None  # its latest prerun (run time starts here)
    pid: int | None = None
    start_rss: int | None = None
    attempts: int = 0
    lost: bool = False  # the child running it died: the result backend says what became of it


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


def retain_open(records: list[dict]) -> list[dict]:
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


class LoadDriver(RunHook):
    """Also a hook of the run: `collect` adds the load section each time the record is assembled."""

    def __init__(self, run, shape: LoadShape):
        self.run = run
        self.shape = shape
        self.flights: dict[str, Flight] = {}
        self.by_name: dict[str, NameStats] = {}
        self.lateness = LogHistogram()
        self.soak = Soak(run.config.memory_bytes)
        self.replacements = Replacements()
        self.series = {
            "in_flight": Series("gauge"),
            "queue_depth": Series("gauge"),
            "group_bytes": Series("gauge"),
            "group_unreclaimable_bytes": Series("gauge"),  # less page cache: what a kill is about
        }
        self.started_count = self.final_count = 0
        self.sent_in_window = 0  # sends that happened within the shape's duration (a late sender has fewer)
        self.sent_in_window_by_name: Counter[str] = Counter()
        self.max_above_start = 0  # the largest exact peak above a task's start: a task's transient
        self.above_start = LogHistogram()  # exact peaks above start, all names
        self.outcomes: Counter[str] = Counter()
        self.checkpoint_cost = LogHistogram()  # CPU seconds per run.checkpoint(): flat in tasks sent, or a defect
        self.kills_seen = 0
        self.sending_done = False
        self.sending_ended_at: float | None = None
        self.stopped_at: float | None = None
        self.start = time.monotonic()
        self.cpu_at_start = 0.0
        self.stream = TaskStream(run.run_dir)
        self.sender = Sender(run.app, run.send_queue, self._sent)
        self.lock = self.sender.lock  # the sending threads' bookkeeping against the readers of the stats
        self.submitted = 0
        self.depth = QueueDepth(run.app, run.connection.broker_url, run.queue)
        self.calls: Iterator = iter(())
        self.source = ""
        self.depth_at_send_end: int | None = None
        self.recent: deque[tuple[float, int, int]] = deque(maxlen=32)  # (time, sent, final) for live rates
        self.last_depth: int | None = None
        self._exits_seen: set[int] = set()
        self.next_due: float | None = None
        self.due_at: dict[str, float] = {}
        self.final_since: float | None = None
        self.worker_gone_at: float | None = None

    # --- the Replay surface the Run reads -----------------------------------------------------
    tasks: list = []  # always empty: a load run's tasks are in tasks.jsonl
    states: dict = {}

    @property
    def all_sent(self) -> bool:
        return self.sending_done

    def unfinished(self) -> int:
        return len(self.flights) + (0 if self.sending_done else 1)

    def unfinished_ids(self) -> list[str]:
        return list(self.flights)

    # --- the run ------------------------------------------------------------------------------
    def drive(self) -> None:
        run = self.run
        run.planned = True
        ctx = run.context()
        self.calls, self.source = call_source(run.scenario, ctx, self.shape.seed, class_tasks(run.config))
        check_registered(run, sent_names(run.scenario, ctx, class_tasks(run.config)))
        run.record.files["tasks"] = TASKS_FILE
        try:
            self._loop()
        finally:
            self.stopped_at = self.stopped_at or time.monotonic()  # interrupted: sending stops here too
            self.sender.close()
            self._finish_all()
            self.depth.close()

    def sending_window(self) -> float:
        """Seconds of the schedule that sending covered: its whole length once it ended, else up to now
        (a checkpoint mid-run) or to where the run stopped (interrupted): the offered rate's divisor."""
        if self.sending_done:
            return self.shape.sending_s  # the whole schedule (its last send may be due before its end)
        end = self.stopped_at or time.monotonic()
        return max(1e-9, min(self.shape.sending_s, end - self.start))

    def _loop(self) -> None:
        run = self.run
        drain = run.config.timeout or DRAIN_SECONDS
        run.record.config = dataclasses.replace(run.config, timeout_used=drain)
        schedule = self.shape.due_times() if self.shape.kind != "closed" else None
        self.next_due = next(schedule, None) if schedule else None
        self.start = self.replacements.origin = time.monotonic()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu_at_start = usage.ru_utime + usage.ru_stime
        self.due_at = dict.fromkeys(("follow", "lost", "sample", "progress"), self.start)
        while True:
            self.sender.check()
            now = time.monotonic()
            elapsed = now - self.start
            if schedule is not None:
                self._send_scheduled(schedule, elapsed)
            elif not self.sending_done:
                self._send_closed(elapsed)
            self._tick(now, elapsed)
            if self._settled(now) or self._worker_gone(now):
                break
            if self.sending_ended_at is not None and now - self.sending_ended_at > drain:
                run.record.message = (
                    f"{len(self.flights)} tasks were still unfinished {drain:.0f} s after sending ended (--timeout)"
                )
                break
            wake = min(self.due_at["follow"], self.due_at["sample"])
            if self.next_due is not None:
                wake = min(wake, self.start + self.next_due)
            time.sleep(max(0.0, min(wake - time.monotonic(), FOLLOW_SECONDS)))
        time.sleep(0.3)  # the last events and kernel lines of a final kill
        self._follow()
        self._look_up_lost()
        run.record.worker.observed_until_mono = time.monotonic()

    def _send_scheduled(self, schedule: Iterator[float], elapsed: float) -> None:
        while self.next_due is not None and self.next_due <= elapsed:
            self.sender.submit([self._flight(self.next_due)])  # each on its own: its due time matters
            self.next_due = next(schedule, None)
        if self.next_due is None:
            self._sending_ended()

    def _tick(self, now: float, elapsed: float) -> None:
        """What is due besides sending: following the probe, looking up lost tasks, the once-a-second
        sample and checkpoint, the live view."""
        due = self.due_at
        if now >= due["follow"]:
            self._follow()
            self.run.kill_watch.check(self.run)  # a poison message is revoked before its next delivery
            due["follow"] = now + FOLLOW_SECONDS
        if now >= due["lost"]:
            self._look_up_lost()
            due["lost"] = now + STATE_POLL_SECONDS
        if now >= due["sample"]:
            self._sample(elapsed)
            # CPU time of this thread: the checkpoint's own work, not the GIL waits for the sender threads
            # or the other processes on the machine, which wall time would count
            began = time.thread_time()
            self.run.checkpoint()
            self.checkpoint_cost.record(time.thread_time() - began)
            due["sample"] = now + SAMPLE_SECONDS
        if now >= due["progress"]:
            self.run.each_hook("running")
            due["progress"] = now + PROGRESS_SECONDS

    def _settled(self, now: float) -> bool:
        """Everything sent is final and has stayed so for the run's settle time."""
        if not (self.sending_done and not self.flights):
            self.final_since = None
            return False
        self.final_since = self.final_since or now
        return now - self.final_since >= self.run.config.settle

    def _worker_gone(self, now: float) -> bool:
        """The worker's main process exited: restarted under `--restart always`, else the run stops
        (nobody is left to finish the rest)."""
        run = self.run
        worker = run.placement.worker
        if worker.poll() is None:
            return False
        self.worker_gone_at = self.worker_gone_at or now
        if run.config.restart == "always":
            if now - self.worker_gone_at >= run.config.restart_delay:
                restart_worker(run, now)
                self.worker_gone_at = None
            return False
        if now - self.worker_gone_at <= GONE_FOR_GOOD_SECONDS:
            return False
        code = "" if worker.returncode is None else f" (code {worker.returncode})"
        run.record.message = f"the worker's main process exited{code} with {len(self.flights)} tasks unfinished"
        return True

    def _sending_ended(self) -> None:
        if not self.sending_done:
            self.sending_done = True
            self.sending_ended_at = time.monotonic()
            self.depth_at_send_end = self.depth.read()

    def _send_closed(self, elapsed: float) -> None:
        shape = self.shape
        if elapsed >= shape.sending_s or (shape.tasks is not None and self.submitted >= shape.tasks):
            self._sending_ended()
            return
        room = shape.in_flight - len(self.flights)
        if shape.tasks is not None:
            room = min(room, shape.tasks - self.submitted)
        if room > 0:
            self.sender.submit([self._flight(None) for _ in range(room)])

    def _flight(self, due: float | None) -> Send:
        """The next call as a flight, which exists before the worker can report it, and its send."""
        call = next(self.calls)
        task_id = str(uuid.uuid4())
        flight = Flight(task_id, call.task, call.label, call.args, time.monotonic(), due)
        self.flights[task_id] = flight
        if call.task not in self.by_name:
            with self.lock:
                self.by_name[call.task] = NameStats()
        self.submitted += 1
        return Send(task_id, call, due, lambda began: setattr(flight, "sent", began))

    def _sent(self, name: str, began: float, due: float | None) -> None:
        """A publish went through (called on a sending thread, under the lock)."""
        self.by_name[name].sent(began - self.start)
        if began - self.start <= self.shape.sending_s:
            self.sent_in_window += 1
            self.sent_in_window_by_name[name] += 1
        if due is not None:
            self.lateness.record(began - self.start - due)

    # --- following tasks ----------------------------------------------------------------------
    def _follow(self) -> None:
        monitor = self.run.observers.monitor
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
        kills = len(monitor.obs.oom_events)
        if kills > self.kills_seen:
            self.kills_seen = kills
            self.soak.kill_seen(self.started_count)

    def _work_waiting(self) -> bool:
        return any(flight.started is None for flight in itertools.islice(self.flights.values(), 0, 64)) or bool(
            self.last_depth
        )

    def _started(self, record: dict) -> None:
        self.replacements.task_started(record["pid"], record["t"])
        flight = self.flights.get(record.get("task_id", ""))
        if flight is None:
            return
        if flight.started is None:
            flight.started = record["t"]
            self.started_count += 1
        flight.last_start, flight.pid, flight.start_rss = record["t"], record["pid"], record.get("start_rss")
        flight.attempts += 1
        flight.lost = False

    def _ended(self, record: dict) -> None:
        self.soak.observe(record["pid"], record["t"] - self.start, record.get("end_rss"))
        flight = self.flights.get(record.get("task_id", ""))
        state = record.get("state")
        if flight is None or state not in ("SUCCESS", "FAILURE"):
            return  # RETRY: the same task id runs again
        self._final(
            flight, "succeeded" if state == "SUCCESS" else "failed", state, None, record["t"], record.get("peak_rss")
        )

    def _look_up_lost(self) -> None:
        """Tasks whose child exited mid-task: Celery marks them failed (WorkerLostError) or the
        broker hands them out again; the result backend says which."""
        monitor = self.run.observers.monitor
        with monitor.lock:
            exits = dict(monitor.obs.exits)
        settled = time.monotonic() - EXIT_SETTLE_SECONDS
        for pid in exits.keys() - self._exits_seen:
            if exits[pid] > settled:
                continue  # its own shutdown record (a recycled child's) may not be read yet
            self._exits_seen.add(pid)
            self.replacements.child_exited(pid, exits[pid], False, self._work_waiting())
        lost = [f for f in self.flights.values() if f.pid in exits and f.last_start and exits[f.pid] >= f.last_start]
        for flight in lost:
            flight.lost = True
        if not lost:
            return
        states = fetch_states(self.run.app, [flight.id for flight in lost])
        poison = {p.task_id for p in self.run.record.poison}
        for flight in lost:
            state, exception = states.get(flight.id, (None, None))
            if state in LOST_STATES:
                killed = state != "SUCCESS" and exception is not None and "WorkerLostError" in exception
                outcome: Outcome = "killed" if killed else "succeeded" if state == "SUCCESS" else "failed"
                outcome = "poison" if flight.id in poison else outcome
                self._final(flight, outcome, state, exception, exits[flight.pid], None)

    def _final(
        self,
        flight: Flight,
        outcome: Outcome,
        state: str | None,
        exception: str | None,
        end: float | None,
        peak: int | None,
    ) -> None:
        exact = peak is not None
        if peak is None and outcome == "killed":
            peak = next((k.rss_bytes for k in self.run.record.kills if k.task_id == flight.id), None)
        latencies = {
            "queue_wait": None if flight.started is None else flight.started - flight.sent,
            "run_time": None if flight.last_start is None or end is None else end - flight.last_start,
            "end_to_end": None if end is None or flight.started is None else end - flight.sent,
        }
        start_rss = flight.start_rss
        self.stream.write(
            TaskLine(
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
            )
        )
        if exact and peak is not None and start_rss is not None:
            self.max_above_start = max(self.max_above_start, peak - start_rss)
            self.above_start.record(peak - start_rss)
        self.outcomes[outcome] += 1
        at = (end if end is not None else time.monotonic()) - self.start
        with self.lock:
            self.by_name[flight.name].final(outcome, at, latencies, peak if exact else None)
        self.final_count += 1
        del self.flights[flight.id]

    def _finish_all(self) -> None:
        """What never became final by the end: its state as the backend has it, in the stream too."""
        remaining = list(self.flights.values())
        states = fetch_states(self.run.app, [flight.id for flight in remaining]) if remaining else {}
        for flight in remaining:
            state, exception = states.get(flight.id, (None, None))
            outcome: Outcome = "stuck" if flight.started is not None else "never_started"
            self._final(flight, outcome, state, exception, None, None)
        self.stream.close()

    # --- once a second ------------------------------------------------------------------------
    def _sample(self, elapsed: float) -> None:
        self.last_depth = self.depth.read()
        if self.last_depth is not None:
            self.series["queue_depth"].add(elapsed, self.last_depth)
        self.series["in_flight"].add(elapsed, len(self.flights))
        sampler = self.run.observers.sampler
        usage = sampler.latest_usage
        if usage is not None:
            self.series["group_bytes"].add(elapsed, usage)
            self.series["group_unreclaimable_bytes"].add(elapsed, usage - (sampler.latest_file_bytes or 0))
        events = self.run.observers.events
        if events is not None:
            events.prune(kept_events(events.snapshot()))
        self.stream.flush()

    def live(self) -> LiveFigures:
        with self.lock:
            return self._live()

    def _live(self) -> LiveFigures:
        now = time.monotonic()
        sent = sum(stats.counts["sent"] for stats in self.by_name.values())
        self.recent.append((now, sent, self.final_count))
        window = [point for point in self.recent if now - point[0] <= 5.0]
        first = window[0]
        span = now - first[0]
        total_e2e = LogHistogram()
        for stats in self.by_name.values():
            total_e2e.merge(stats.latency["end_to_end"])
        return LiveFigures(
            elapsed=now - self.start,
            sent=sent,
            final=self.final_count,
            offered_per_s=(sent - first[1]) / span if span >= 1 else None,
            achieved_per_s=(self.final_count - first[2]) / span if span >= 1 else None,
            in_flight=len(self.flights),
            queue_depth=self.last_depth,
            end_to_end_p95=total_e2e.quantile(0.95),
            group_bytes=self.run.observers.sampler.latest_usage,
            group_file_bytes=self.run.observers.sampler.latest_file_bytes,
            limit_bytes=self.run.config.memory_bytes,
            kills=self.kills_seen,
        )

    def own_cost(self) -> HarnessCost:
        """What the harness itself costs: oomlab's peak RSS and CPU (this process, not the worker),
        and each checkpoint's time."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return HarnessCost(
            oomlab_peak_rss_bytes=usage.ru_maxrss * 1024,
            oomlab_cpu_seconds=round(usage.ru_utime + usage.ru_stime, 3),
            # since the first send: the cost that grows with tasks, without start-up (imports, the worker's launch)
            load_cpu_seconds=round(usage.ru_utime + usage.ru_stime - self.cpu_at_start, 3),
            checkpoint_seconds=self.checkpoint_cost.summary(),
            in_memory="per task name, plus the tasks in flight",
            peak_rss_basis="ru_maxrss of the oomlab process, to the last record written (the report included)",
        )

    # --- the record ---------------------------------------------------------------------------
    def collect(self, run: RunView) -> None:
        """run.json's `load` section: aggregates only, the same size at a thousand tasks or a million."""
        from oomlab.run.load.section import apply_summary, load_section

        with self.lock:
            run.record.load = load_section(self, run.record)
            apply_summary(self, run.record.summary)
        # task events that came since the last prune (the final record is assembled after the
        # loop's last one): the record keeps only what attribution reads, like the capture
        keep = kept_events(run.record.celery_events)
        run.record.celery_events = [event for event in run.record.celery_events if keep(event)]

    def finished(self, run: RunView) -> None:
        """The harness's cost once more, after the other hooks drew the timeline and wrote the report
        (the driver is the run's last hook): its peak RSS is the whole run's, reading the files included."""
        if run.record.load is not None:
            run.record.load.harness = self.own_cost()


def drive(run) -> LoadDriver:
    """Run `run`'s load shape (its config's `load`) in place of the plan replay."""
    driver = LoadDriver(run, LoadShape.from_dict(run.config.load))
    run.replay = driver  # what the run reads of a replay: no task list, the unfinished ones
    run.hooks = (*run.hooks, driver)
    driver.drive()
    return driver
