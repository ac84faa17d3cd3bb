"""--events redis://HOST:PORT/DB/STREAM: the worker's events on a Redis stream, for a fleet run to read.

The watcher's thread hands each event to a bounded queue without waiting (`publish`); a thread of its
own sends them with `XADD STREAM MAXLEN ~ 100000`, so a slow or absent Redis costs dropped events,
counted, never a delayed detection. While Redis cannot be reached, events are dropped at once (no
connect timeout per event) and a retry comes every few seconds; the replica's hello (`worker_start`)
is kept and sent first once Redis answers, so a late replica still joins.

Only the first hello makes the stream (XADD); every other event is sent with NOMKSTREAM, so a stream
the controller deleted at the end of its run stays deleted. An event that finds the stream gone (its
run ended) makes the agent say hello again, with NOMKSTREAM, every RETRY_S: the next run, which makes
the stream at its start, finds every replica of a long-lived fleet there. A next run that made the stream
again before any event found it gone is found once a second: the stream no longer holds this hello. Events carry names, ids, pids and figures,
never arguments, URLs or secrets; the password in the URL goes to the Redis client only."""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from oomlab.agent.kills import Kill
from oomlab.config.events_url import EventsUrl
from oomlab.probe.events import CHILD_INIT, CHILD_SHUTDOWN, POSTRUN, PRERUN, ProbeLine
from oomlab.record import fleet
from oomlab.worker.redis_clock import redis_clock_offset

CAPACITY = 10_000
BATCH = 200  # events sent in one round trip at most
MEMORY_S = 1.0  # how often the worker's memory group's usage and peak are sent (once the hello is)
RETRY_S = 3.0  # while Redis is unreachable: events are dropped, and a connection is tried again this often
_TIMEOUT_S = 2.0


class EventSink:
    def __init__(self, url: EventsUrl, replica: str | None, report: Callable[[str], None]):
        self.url = url
        self.replica = replica or socket.gethostname()
        self.report = report
        self.pending: queue.Queue[dict[str, Any] | None] = queue.Queue(CAPACITY)
        self.sent = 0
        self.dropped = 0  # full queue, Redis unreachable, or the stream gone (deleted by its run)
        self.hello: dict[str, Any] | None = None  # the worker_start, until Redis has it
        self.hello_sent = False
        self.rejoining = False  # the stream was deleted after the hello: wait for a run to make it again
        self.clock: tuple[float, float] | None = None
        self._client: Any = None
        self._down_until = 0.0
        self._said_down = False
        self._seq = 0
        self._hello_id: bytes | str | None = None  # the stream entry of the hello Redis has
        self.memory: Callable[[], tuple[int | None, int | None]] | None = None  # the group's (usage, peak) now
        self._memory_at = 0.0
        self._thread = threading.Thread(target=self._run, name="oomlab-agent-events", daemon=True)

    def start(self) -> EventSink:
        self._thread.start()
        return self

    # --- from the watcher's thread: never blocks -------------------------------------------------
    def publish(self, ev: str, wall: float | None = None, **fields: Any) -> None:
        self._seq += 1
        event = {"ev": ev, "replica": self.replica, "seq": self._seq, "wall": wall or time.time(), **fields}
        try:
            self.pending.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def probe_line(self, line: ProbeLine) -> None:
        """A line of the probe, as the fleet's event (task start and end, pool children)."""
        ev, wall = line["ev"], line.get("wall")
        if ev == PRERUN:
            links = {k: line.get(k) for k in ("parent_id", "root_id", "group_id") if line.get(k)}
            self.publish(
                fleet.TASK_START, wall, id=line.get("task_id"), name=line.get("name"), pid=line["pid"], **links
            )
        elif ev == POSTRUN:
            get: Any = line.get
            self.publish(
                fleet.TASK_END,
                wall,
                id=get("task_id"),
                name=get("name"),
                pid=line["pid"],
                state=get("state"),
                tree_peak=get("tree_peak"),
                tree_peak_exact=bool(get("tree_peak_exact")),
                peak_rss=get("peak_rss"),
            )
        elif ev == CHILD_INIT:
            self.publish(fleet.CHILD_START, wall, pid=line["pid"])
        elif ev == CHILD_SHUTDOWN:
            self.publish(fleet.CHILD_EXIT, wall, pid=line["pid"], exitcode=line.get("exitcode"))

    def worker_ready(
        self, hostname: str | None, pid: int, limit: int | None, concurrency: int | None, queues: Any = None
    ) -> None:
        """The hello: kept until Redis has it (sent first after a reconnect)."""
        self.hello = {
            "ev": fleet.WORKER_START,
            "replica": self.replica,
            "seq": 0,
            "wall": time.time(),
            "hostname": hostname,
            "pid": pid,
            "agent_pid": os.getpid(),
            "limit_bytes": limit,
            "concurrency": concurrency,
            "queues": queues if isinstance(queues, list) else None,  # what its worker consumes (None: unknown)
        }
        try:
            self.pending.put_nowait(None)  # wake the sender (None: no event, just look at the hello)
        except queue.Full:
            pass  # the sender is busy: it sends the hello before its next event

    def kill(self, kill: Kill) -> None:
        seen_wall = time.time() - (time.monotonic() - kill.seen_mono)
        body = {k: v for k, v in kill.as_json().items() if k not in ("repaired", "queue")}
        self.publish(fleet.KILL, seen_wall, **body)

    def worker_exit(self, code: int) -> None:
        self.publish(fleet.WORKER_EXIT, code=code, dropped=self.dropped)

    def close(self, timeout: float) -> None:
        """Send what is queued (at most `timeout`), then stop: the agent is about to exit."""
        deadline = time.monotonic() + timeout
        while self.pending.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.dropped:
            self.report(f"{self.dropped} event(s) were not sent to {self.url.shown}")

    # --- the sender thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._send_memory()
            try:  # a hello not yet sent is tried again every RETRY_S, events or not
                first = self.pending.get(timeout=RETRY_S if self.hello and not self.hello_sent else MEMORY_S)
            except queue.Empty:
                self._send_hello()
                continue
            batch = [first]  # what else is queued goes in the same round trip (a pipeline)
            while len(batch) < BATCH:
                try:
                    batch.append(self.pending.get_nowait())
                except queue.Empty:
                    break
            try:
                self._send_hello()
                events = [event for event in batch if event is not None]
                if events:
                    self._send(events)
                if any(event["ev"] in (fleet.TASK_END, fleet.KILL) for event in events):
                    self._memory_at = 0.0  # the group's memory right after a task's end: its run's peak
                    self._send_memory()
            finally:
                for _ in batch:
                    self.pending.task_done()

    def _send_memory(self) -> None:
        """The worker's memory group, once a second and after each task's end or kill: the replica's
        own usage and peak (the whole worker, its main process and every pool child), which no task's
        figure gives. The peak is the group's since it was made: a run compares it with its hello's."""
        now = time.monotonic()
        if self.memory is None or not self.hello_sent or now < self._memory_at + MEMORY_S:
            return
        self._memory_at = now
        client = self._connected()
        if client is not None and not self._still_joined(client):
            self.hello_sent, self.rejoining = False, True  # a new run made the stream again: join it
            self._send_hello()
            return
        try:
            usage, peak = self.memory()
        except OSError:
            return
        self._seq += 1
        event = {"ev": fleet.MEMORY, "replica": self.replica, "seq": self._seq, "wall": time.time()}
        self._send([{**event, "usage_bytes": usage, "peak_bytes": peak}])

    def _still_joined(self, client: Any) -> bool:
        """False when the stream no longer holds this replica's hello although it has entries: its run
        deleted it and the next run made it again before any event of ours found it gone (two runs back
        to back on one stream), so that run has not heard this replica. A stream long enough to have
        been trimmed past the hello, or one that is gone, is left to the other rules."""
        if self._hello_id is None:
            return True
        try:
            pipe = client.pipeline(transaction=False)
            pipe.xrange(self.url.stream, self._hello_id, self._hello_id, count=1)
            pipe.xlen(self.url.stream)
            found, length = pipe.execute()
        except Exception:
            return True  # Redis is down: the sends say so
        return bool(found) or length == 0 or length >= fleet.STREAM_MAXLEN // 2

    def _group_now(self) -> dict[str, int | None]:
        if self.memory is None:
            return {}
        try:
            usage, peak = self.memory()
        except OSError:
            return {}
        return {"group_usage_bytes": usage, "group_peak_bytes": peak}

    def _connected(self) -> Any:
        if self._client is not None:
            return self._client
        if time.monotonic() < self._down_until:
            return None
        import redis  # only with --events: the agent's process stays small without it

        try:
            client = redis.Redis.from_url(
                self.url.client_url, socket_timeout=_TIMEOUT_S, socket_connect_timeout=_TIMEOUT_S
            )
            self.clock = redis_clock_offset(client)
        except Exception as exc:
            self._down(exc)
            return None
        self._client = client
        if self._said_down:
            self.report(f"the events stream {self.url.shown} is reachable again")
            self._said_down = False
        return client

    def _down(self, exc: BaseException) -> None:
        self._client = None
        self._down_until = time.monotonic() + RETRY_S
        if not self._said_down:
            self._said_down = True
            self.report(
                f"cannot send events to {self.url.shown} ({type(exc).__name__}); they are dropped, counted, "
                f"and the connection is tried again every {RETRY_S:.0f} s"
            )

    def _send_hello(self) -> None:
        if self.hello is None or self.hello_sent:
            return
        client = self._connected()
        if client is None or self.clock is None:
            return
        hello = dict(self.hello)
        try:
            if self.rejoining:  # the clock again, and the hello stamped now: a new run's
                self.clock = redis_clock_offset(client)
                hello.update(wall=time.time(), rejoined=True)
            hello.update(clock_offset_s=self.clock[0], clock_round_trip_s=self.clock[1])
            hello.update(self._group_now())  # the group's peak before the run: what the run's is compared with
            added = client.xadd(
                self.url.stream,
                {fleet.EVENT_FIELD: fleet.encode_event(hello)},
                maxlen=fleet.STREAM_MAXLEN,
                approximate=True,
                nomkstream=self.rejoining,  # after a run deleted it, only the next run makes the stream
            )
        except Exception as exc:
            self._down(exc)
            return
        if added is None:
            return  # no run yet: tried again in RETRY_S
        self.hello_sent, self.rejoining, self._hello_id = True, False, added
        self.sent += 1

    def _send(self, events: list[dict[str, Any]]) -> None:
        client = self._connected()
        if client is None:
            self.dropped += len(events)
            return
        try:
            pipe = client.pipeline(transaction=False)
            for event in events:
                pipe.xadd(
                    self.url.stream,
                    {fleet.EVENT_FIELD: fleet.encode_event(event)},
                    maxlen=fleet.STREAM_MAXLEN,
                    approximate=True,
                    nomkstream=True,
                )
            added = pipe.execute()
        except Exception as exc:
            self.dropped += len(events)
            self._down(exc)
            return
        gone = sum(entry is None for entry in added)  # the stream is gone (its run deleted it, or none made it yet)
        self.sent += len(added) - gone
        self.dropped += gone
        if gone and self.hello_sent:  # its run ended: the hello goes again when the next run makes the stream
            self.hello_sent, self.rejoining = False, True
