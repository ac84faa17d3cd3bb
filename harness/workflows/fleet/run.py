"""`oomlab run SCENARIO --fleet redis://HOST:PORT/DB/STREAM --replicas N --broker URL`: the controller.

1. It measures its clock against Redis `TIME` and reads the stream from its start until N replicas
   said hello (their agents' `worker_start`), or the hello timeout passed: a replica that never said
   hello is counted as missing, and the run goes on with those that did (none: refused).
2. It makes the scenario's plan for the limit and pool the replicas reported, and sends it to the queue
   the replicas consume, at the plan's times, while it reads the stream (every task's start, end and
   kill, on the replica that ran it) and the queue's depth.
3. When every task sent is final (or the timeout passed), each task still open is looked up in the
   result backend, else counted lost; the stream is deleted and results/<run-id>/fleet.json written."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from oomlab.config.events_url import EventsUrl
from oomlab.config.load_mix import call_source
from oomlab.config.load_shapes import LoadShape
from oomlab.config.scenario import RunContext, Scenario, TaskCall
from oomlab.errors import BadInput, BrokerUnreachable, Interrupted, WorkerStartFailed
from oomlab.record import fleet
from oomlab.record.exact_counts import nearest_rank
from oomlab.record.fleet import FLEET_FILE, Clock, FleetFigures, FleetRecord, FleetTask, ReplicaRecord
from oomlab.record.redact import safe_url
from oomlab.record.schema import write_json_atomic
from oomlab.run.load.depth import QueueDepth
from oomlab.run.sending import send_call
from oomlab.run.signals import RunSignals
from oomlab.run.state import new_run_id
from oomlab.trust import private_dir
from oomlab.worker.client_app import detach, point_at
from oomlab.worker.reach import unreachable
from oomlab.worker.redis_clock import redis_clock_offset
from oomlab.workflows.fleet.beside import SingleRun, beside, check_against
from oomlab.workflows.fleet.events import Fold, TaskState
from oomlab.workflows.fleet.stream import read_stream

BACKLOG_S = 0.5
READ_BLOCK_MS = 200
POLL_S = 1.0  # open tasks are looked up in the result backend this often
POLL_AFTER_S = 2.0  # once sent this long ago
POLL_CAP = 100
DRAIN_S = 2.0
QUIET_S = 1.5  # every task final: the run still reads this long, for tasks its tasks sent (a chord's parts)
QUEUE_WAIT_S = 10.0  # and while its queue is not empty, this long at most
SCHEDULE_GRACE_S = 60.0  # an open loop's tasks may end this long after its sending


@dataclass
class FleetOptions:
    events: EventsUrl
    replicas: int
    broker: str
    result_backend: str | None
    queue: str
    replica_names: list[str] | None = None  # --replicas r1,r2,r3: who should say hello (named when missing)
    variant: str | None = None
    params: dict[str, str] | None = None
    tasks: int | None = None
    shape: LoadShape | None = None  # an open-loop schedule (--rate/--duration, --stages) instead of the plan
    hello_timeout_s: float = 60.0
    timeout_s: float | None = None
    results: str = "results"
    beside: SingleRun | None = None  # --beside RUN_DIR: one worker's run of the same tasks, set beside the fleet's


class FleetRun:
    def __init__(self, scenario: Scenario, options: FleetOptions, say: Callable[[str], None]):
        self.scenario, self.options, self.say = scenario, options, say
        self.run_id = new_run_id(f"{scenario.name}-fleet")
        self.run_dir = os.path.join(options.results, self.run_id)
        self.fold = Fold()
        self.last_id = "0-0"
        self.backlog: list[tuple[float, int]] = []
        self.notes: list[str] = []
        self.client: Any = None
        self.offset = 0.0
        self.started = 0.0
        self.pending: deque[TaskState] = deque()  # registered by the sender, folded in by the reader
        self.send_error: str | None = None
        self.missing_names: list[str] = []
        self.stopping = False  # the sender stops at its next task
        self.schedule = ""
        self.asked_per_s: float | None = None
        self.conflicts_said = 0
        self.stream_lost: str | None = None  # the stream gone or not a stream any more: the run ends with what it has

    def now(self) -> float:
        """The Redis server's clock, read on this host's."""
        return time.time() + self.offset

    def execute(self) -> FleetRecord:
        import redis

        options = self.options
        private_dir(options.results, "results directory")  # refused before anything is sent
        self.client = redis.Redis.from_url(options.events.client_url, socket_timeout=10, socket_connect_timeout=5)
        try:
            self.offset, trip = redis_clock_offset(self.client)
        except redis.RedisError as exc:
            raise BrokerUnreachable(
                f"cannot reach the events stream {options.events.shown} ({type(exc).__name__}); is its Redis up?"
            ) from None
        for what, url in (("broker", options.broker), ("result backend", options.result_backend)):
            if (why := unreachable(url)) is not None:  # said now, not after the hellos and a client's minute
                raise BrokerUnreachable(f"cannot reach the {what} {safe_url(str(url))} ({why}); is it up?")
        private_dir(self.run_dir, "run directory")  # a plan's generated inputs may go there
        clock = Clock(offset_s=self.offset, round_trip_s=trip)
        self.started = self.now()
        self.fold.window_start = self.started
        missing, interrupted = 0, None
        with RunSignals() as signals:  # SIGINT, SIGTERM, SIGHUP: the stream deleted, the record kept, then exit
            try:
                missing = self._run()
            except Interrupted as stop:
                interrupted, self.stopping = stop, True
            except BaseException:
                _remove_if_empty(self.run_dir)  # refused (no hello, a broker down): no record to keep
                raise
            finally:
                with signals.cleaning_up():
                    deleted = self._delete_stream()
        self._fold_sent()
        if interrupted is not None:
            still = len(self.fold.open_tasks())
            self.notes.append(
                f"interrupted by signal {interrupted.signum}: {still} task(s) still open are counted lost"
            )
        record = self._record(clock, missing, deleted)
        if interrupted is not None:
            record.status = "interrupted"
        write_json_atomic(os.path.join(self.run_dir, FLEET_FILE), record.to_json())
        if interrupted is not None:
            raise interrupted
        return record

    def _run(self) -> int:
        """Hellos, the plan sent and followed; how many replicas are missing."""
        options = self.options
        start = {"ev": fleet.RUN_START, "run_id": self.run_id, "wall": self.started}
        self.client.xadd(
            options.events.stream,
            {fleet.EVENT_FIELD: fleet.encode_event(start)},
            maxlen=fleet.STREAM_MAXLEN,
            approximate=True,
        )  # the stream made: replicas whose earlier run deleted it say hello again
        self._wait_for_hellos()
        ready = [r for r in self.fold.replicas.values() if r.ready_s is not None]
        if not ready:
            raise WorkerStartFailed(
                f"no replica said hello on {options.events.shown} within {options.hello_timeout_s:g} s: start "
                f"each worker under `oomlab agent --events {options.events.shown}` (the stream was deleted)"
            )
        missing, self.missing_names = self._missing(ready)
        if missing:
            named = f": {', '.join(self.missing_names)}" if self.missing_names else ""
            self.say(
                f"{len(ready)} of {options.replicas} replicas said hello within {options.hello_timeout_s:g} s "
                f"({', '.join(sorted(r.name for r in ready))}); {missing} missing{named}: the run goes on "
                f"without them"
            )
        self._say_unexpected(ready)
        self._check_queue(ready)
        self._drive(ready)
        return missing

    def _say_unexpected(self, ready: list[ReplicaRecord]) -> None:
        """Replicas beyond those --replicas expected: they take tasks too, so they are said (and kept in
        the notes), never counted silently (a per-replica figure divides by every replica that ran)."""
        names, expected = self.options.replica_names, self.options.replicas
        extra = sorted(r.name for r in ready if r.name not in names) if names else []
        if extra:
            sentence = (
                f"{len(extra)} replica(s) not named by --replicas said hello and take tasks too: {', '.join(extra)}"
            )
        elif len(ready) > expected:
            sentence = f"{len(ready)} replicas said hello where --replicas expected {expected}; every one takes tasks"
        else:
            return
        self.notes.append(sentence)
        self.say(sentence)

    def _check_queue(self, ready: list[ReplicaRecord]) -> None:
        """Refused before anything is sent: a --queue no replica consumes (each hello names its queues)."""
        queue = self.options.queue
        if any(r.queues is None or queue in r.queues for r in ready):
            return  # one consumes it, or one did not say (an older agent): the run goes on
        theirs = "; ".join(f"{r.name}: {', '.join(r.queues or []) or '-'}" for r in sorted(ready, key=lambda r: r.name))
        raise BadInput(
            f"no replica consumes the queue {queue} (theirs: {theirs}); give --queue with one of those "
            f"(nothing was sent)"
        )

    # --- the stream ------------------------------------------------------------------------------
    def _read(self, block_ms: int) -> None:
        self._fold_sent()
        if self.stream_lost:
            time.sleep(block_ms / 1000)
            return
        entries, self.stream_lost = read_stream(self.client, self.options.events.stream, self.last_id, block_ms)
        if self.stream_lost:
            self.notes.append(self.stream_lost)
            self.say(self.stream_lost)
            self.stopping = True
        for _stream, items in entries:
            for entry_id, fields in items:
                self.last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                self.fold.take_entry(fields.get(fleet.EVENT_FIELD.encode()) or fields.get(fleet.EVENT_FIELD))
        for conflict in self.fold.conflicts[self.conflicts_said :]:
            self.say(conflict)  # a hello refused: said as it comes, and kept in the record's notes
        self.conflicts_said = len(self.fold.conflicts)

    def _wait_for_hellos(self) -> None:
        deadline = time.monotonic() + self.options.hello_timeout_s
        while time.monotonic() < deadline:
            self._read(READ_BLOCK_MS)
            ready = [r for r in self.fold.replicas.values() if r.ready_s is not None]
            if not self._missing(ready)[0] or self.stream_lost:
                return

    def _missing(self, ready: list[ReplicaRecord]) -> tuple[int, list[str]]:
        """How many replicas have not said hello, and which, when --replicas named them."""
        names = self.options.replica_names
        if names:
            missing = sorted(set(names) - {r.name for r in ready})
            return len(missing), missing
        return max(0, self.options.replicas - len(ready)), []

    def _delete_stream(self) -> bool:
        try:
            self.client.delete(self.options.events.stream)
            return True
        except Exception as exc:
            self.notes.append(f"the stream could not be deleted: {type(exc).__name__}")
            return False

    # --- sending and following ------------------------------------------------------------------
    def _drive(self, ready: list) -> None:
        options, scenario = self.options, self.scenario
        limits = [r.limit_bytes for r in ready if r.limit_bytes]
        if not limits:
            raise BadInput("no replica reported a memory limit; run each agent with --memory or in a limited container")
        ctx = RunContext(
            limit_bytes=min(limits),
            concurrency=next((r.concurrency for r in ready if r.concurrency), 1),
            pool="prefork",
            variant=scenario.variant(options.variant).name,
            tasks=options.tasks,
            params=scenario.resolve_params(options.params or {}),
            run_dir=self.run_dir,
        )
        calls, timeout = self._schedule(ctx)
        if options.beside is not None:  # a plan (the CLI refuses an open loop with --beside): a list
            calls = list(calls)
            check_against(options.beside, ready, [call.label for call in calls])
        app = scenario.app
        point_at(app, {"broker_url": options.broker, "result_backend": options.result_backend or options.broker})
        depth = QueueDepth(app, options.broker, options.queue)
        sending = threading.Thread(target=self._send, args=(app, calls), name="oomlab-fleet-send", daemon=True)
        start = time.monotonic()
        sending.start()
        next_depth = next_poll = 0.0
        waiting: int | None = None
        quiet_since: float | None = None  # every task final since then
        try:
            while time.monotonic() - start < timeout:
                self._read(READ_BLOCK_MS)
                if self.stream_lost:
                    break
                if time.monotonic() >= next_depth:
                    waiting = depth.read()
                    if waiting is not None:
                        self.backlog.append((round(self.now() - self.started, 3), waiting))
                    next_depth = time.monotonic() + BACKLOG_S
                if time.monotonic() >= next_poll:
                    self._poll_backend(app)
                    next_poll = time.monotonic() + POLL_S
                done_sending = not sending.is_alive()
                self._fold_sent()
                if not done_sending or self.fold.open_tasks():
                    quiet_since = None
                    continue
                # every task final: those its tasks sent (a chord's parts, its callback) may be on their way,
                # or waiting in the queue (whose messages may also be others': waited for QUEUE_WAIT_S at most)
                quiet_since = quiet_since or time.monotonic()
                quiet = time.monotonic() - quiet_since
                if quiet >= QUIET_S and (not waiting or quiet >= QUEUE_WAIT_S):
                    break
            else:
                self.notes.append(f"the timeout ({timeout:g} s) passed with {len(self.fold.open_tasks())} task(s) open")
            self._drain()
            sending.join(timeout=5)
            if self.send_error:
                raise BrokerUnreachable(f"cannot send to the broker: {self.send_error}")
            self._settle(app)
        finally:
            self.stopping = True
            depth.close()
            self._delete_leftovers()
            detach(app)
            scenario.teardown(ctx)

    def _schedule(self, ctx: RunContext) -> tuple[Iterable[TaskCall], float]:
        """What is sent and when, and how long the run may take: the plan, or an open-loop schedule
        (--rate/--duration, --stages) of the scenario's mix (else its plan repeated)."""
        shape, scenario = self.options.shape, self.scenario
        if shape is None:
            plan = scenario.plan(ctx)
            self.schedule = f"the scenario's plan of {len(plan.calls)} calls"
            return plan.calls, self.options.timeout_s or plan.timeout
        source, where = call_source(scenario, ctx, shape.seed)
        what = f"{shape.rate:g}/s for {shape.sending_s:g} s" if shape.kind == "rate" else f"{len(shape.stages)} stages"
        self.schedule, self.asked_per_s = f"{what}: {where}", shape.asked_per_s
        calls = (replace(call, at=due) for due, call in zip(shape.due_times(), source, strict=False))
        return calls, self.options.timeout_s or shape.sending_s + SCHEDULE_GRACE_S

    def _drain(self) -> None:
        """Tasks the result backend said were final a moment before their end event came (Celery stores
        a result before the probe's postrun): their events, read for up to DRAIN_S more."""
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline:
            if not any(task.how_known == "result backend" for task in self.fold.tasks.values()):
                return
            self._read(READ_BLOCK_MS)

    def _send(self, app: Any, calls: Iterable[TaskCall]) -> None:
        start = time.monotonic()
        try:
            for call in calls:
                if self.stopping:
                    return
                wait = start + call.at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                task_id = str(uuid.uuid4())
                state = TaskState(task_id, call.task, call.label, self.now())
                self.pending.append(state)
                send_call(app, call, task_id, self.options.queue)
        except Exception as exc:
            self.send_error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"  # one line

    def _poll_backend(self, app: Any, everything: bool = False) -> None:
        """Open tasks sent a while ago, oldest first (at most POLL_CAP a time): final in the result
        backend means their end event was lost (a replica whose agent cannot reach the stream)."""
        now = self.now()
        open_ids = [
            i for i in self.fold.open_tasks() if everything or now - self.fold.tasks[i].sent_wall > POLL_AFTER_S
        ]
        for task_id in open_ids if everything else open_ids[:POLL_CAP]:
            task = self.fold.tasks[task_id]
            if task.redelivered:
                continue
            try:
                result = app.AsyncResult(task_id)
                state, value = result.state, result.result if result.state == "FAILURE" else None
            except Exception:
                continue
            if state not in ("SUCCESS", "FAILURE"):
                continue
            killed = type(value).__name__ == "OOMKilled"  # the agent's mark: the kill's event was lost
            task.outcome = "succeeded" if state == "SUCCESS" else "killed" if killed else "failed"
            task.state, task.how_known, task.ended_wall = state, "result backend", None

    def _settle(self, app: Any) -> None:
        """Tasks still open: the result backend's word, else lost."""
        self._fold_sent()
        self._poll_backend(app, everything=True)
        for task_id in self.fold.open_tasks():
            self.fold.tasks[task_id].outcome = "lost"
        from_backend = sum(task.how_known == "result backend" for task in self.fold.tasks.values())
        if from_backend:
            self.notes.append(
                f"{from_backend} task(s) known final from the result backend only (no event of their end came)"
            )

    def _delete_leftovers(self) -> None:
        """An unfinished run's messages still waiting in its queue, deleted when the queue is oomlab's own
        (`oomlab.SCENARIO`) on a Redis broker: only those this run sent (by task id), so nothing runs them
        after the run counted them lost."""
        queue, broker = self.options.queue, self.options.broker
        if queue != f"oomlab.{self.scenario.name}" or not broker.startswith(("redis://", "rediss://")):
            return
        self._fold_sent()
        ours = {t.id for t in self.fold.tasks.values() if t.sent_by == "run" and t.started_wall is None}
        ours -= {t.id for t in self.fold.tasks.values() if t.outcome in ("succeeded", "failed", "killed")}
        if not ours:
            return
        import redis

        deleted = 0
        try:
            client: Any = redis.Redis.from_url(broker, socket_timeout=10, socket_connect_timeout=5)
            for key in [queue, *(f"{queue}\x06\x16{step}" for step in (3, 6, 9))]:  # kombu's priority lists
                for raw in client.lrange(key, 0, -1):
                    try:
                        task_id = json.loads(raw).get("headers", {}).get("id")
                    except (ValueError, AttributeError):
                        continue
                    if task_id in ours:
                        deleted += int(client.lrem(key, 1, raw))
        except redis.RedisError as exc:
            self.notes.append(f"the run's leftover messages in {queue} could not be deleted ({type(exc).__name__})")
            return
        if deleted:
            self.notes.append(
                f"{deleted} message(s) this run sent were still waiting in its queue {queue}: deleted, counted lost"
            )

    def _fold_sent(self) -> None:
        while self.pending:
            self.fold.sent(self.pending.popleft())

    # --- the record ------------------------------------------------------------------------------
    def _record(self, clock: Clock, missing: int, deleted: bool) -> FleetRecord:
        start = self.started
        fold = self.fold
        tasks = []
        for state in fold.tasks.values():
            task = FleetTask(
                id=state.id,
                name=state.name,
                label=state.label,
                outcome=state.outcome or "lost",  # type: ignore[arg-type]
                sent_s=_rel(state.sent_wall, start) or 0.0,
                replica=state.replica,
                pid=state.pid,
                started_s=_rel(state.started_wall, start),
                ended_s=_rel(state.ended_wall, start),
                runtime_s=_round(state.runtime_s),
                peak_bytes=state.peak_bytes,
                peak_exact=state.peak_exact,
                state=state.state,
                how_known=state.how_known,
                sent_by="worker" if state.sent_by == "worker" else "run",
                parent_id=state.parent_id,
                root_id=state.root_id,
                group_id=state.group_id,
            )
            if state.started_wall is not None:
                task.wait_s = _round(max(0.0, state.started_wall - state.sent_wall))
            if state.ended_wall is not None and task.outcome != "lost":
                task.latency_s = _round(max(0.0, state.ended_wall - state.sent_wall))
            tasks.append(task)
        tasks.sort(key=lambda t: t.sent_s)
        fold.group_peaks()
        for replica in fold.replicas.values():
            replica.ready_s = _rel(replica.ready_s, start)
        for kill in fold.kills:
            kill.at_s = _rel(kill.at_s, start)
        figures = _figures(tasks, self.backlog)
        figures.asked_per_s = self.asked_per_s
        group_peaks = [r.group_peak_bytes for r in fold.replicas.values() if r.group_peak_bytes is not None]
        figures.group_peak_bytes = max(group_peaks) if group_peaks else None
        said_hello = sum(r.ready_s is not None for r in fold.replicas.values())
        compared = beside(self.options.beside, figures, said_hello) if self.options.beside else None
        status = "replicas_missing" if missing else "tasks_lost" if figures.lost else "complete"
        if fold.foreign:
            self.notes.append(f"{fold.foreign} stream entries were not an agent's event")
        self.notes.extend(fold.notes())
        return FleetRecord(
            run_id=self.run_id,
            scenario=self.scenario.name,
            stream=self.options.events.shown,
            schedule=self.schedule,
            queue=self.options.queue,
            status=status,  # type: ignore[arg-type]
            started_wall=round(start, 6),
            replicas_expected=self.options.replicas,
            replicas=sorted(fold.replicas.values(), key=lambda r: r.name),
            missing=missing,
            missing_names=self.missing_names,
            controller_clock=clock,
            tasks=tasks,
            kills=fold.kills,
            figures=figures,
            events_read=fold.events,
            stream_deleted=deleted,
            notes=self.notes,
            beside=compared,
        )


def _remove_if_empty(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


def _rel(wall: float | None, start: float) -> float | None:
    return None if wall is None else round(wall - start, 6)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _figures(tasks: list[FleetTask], backlog: list[tuple[float, int]]) -> FleetFigures:
    figures = FleetFigures(sent=len(tasks), backlog=backlog)
    figures.sent_by_tasks = sum(task.sent_by == "worker" for task in tasks)
    for task in tasks:
        setattr(figures, task.outcome, getattr(figures, task.outcome) + 1)
    ended = [t.ended_s for t in tasks if t.ended_s is not None and t.outcome != "lost"]
    figures.timed = len(ended)
    if tasks and ended:
        figures.duration_s = round(max(ended) - min(t.sent_s for t in tasks), 6)
        if figures.duration_s > 0:
            figures.throughput_per_s = round(len(ended) / figures.duration_s, 3)
    latencies = sorted(t.latency_s for t in tasks if t.latency_s is not None)
    if latencies:
        figures.latency_p50_s, figures.latency_p95_s = nearest_rank(latencies, 0.5), nearest_rank(latencies, 0.95)
        figures.latency_max_s = latencies[-1]
    waits = sorted(t.wait_s for t in tasks if t.wait_s is not None)
    if waits:
        figures.wait_p50_s, figures.wait_p95_s = nearest_rank(waits, 0.5), nearest_rank(waits, 0.95)
    peaks = [t.peak_bytes for t in tasks if t.peak_bytes is not None and t.outcome == "succeeded"]
    figures.peak_bytes = max(peaks) if peaks else None
    figures.backlog_max = max((n for _, n in backlog), default=None)
    return figures
