"""Prometheus /metrics (prometheus-client, the `oomlab[agent]` extra), bound to 127.0.0.1 unless told
otherwise. Labels carry task names, queues and roles, never a task's arguments or any URL; each value
is made printable text in one place (`label`), so no name a message brings can break a scrape.

The server is prometheus-client's WSGI app in a server of the agent's own: any local user can connect
to the port, and a thread and a file descriptor per connection held open for ever would let one
exhaust the agent's (its pidfds then fail, or take numbers select() refuses). So a connection gets
CONNECTION_TIMEOUT_S per read and CONNECTION_DEADLINE_S in all, and at most MAX_CONNECTIONS are open
at once. When all are taken, a new connection takes the place of the oldest one that has not yet
sent its whole request: a scraper sends its request as it connects and is served at once, so a local
user holding every place with half-sent requests no longer keeps Prometheus out (it would have to
open connections faster than a scraper's request takes to arrive); a new connection is closed only
when every place serves a whole request. A request's line and headers are read up to REQUEST_HEAD_BYTES
(Python's own parser takes 100 headers of 64 KiB each: 16 connections could have made the agent
hold ~100 MiB, in the very group whose limit its worker's tasks are judged by)."""

from __future__ import annotations

import errno
import socket
import threading
import time
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from oomlab.agent.kills import Kill
from oomlab.errors import BadInput
from oomlab.record.printable import printable_field

_PEAK_BUCKETS = tuple(2**20 * 2**n for n in range(15))  # 1 MiB to 16 GiB: a task's own peak is often a few MiB
_DETECTION_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0)
MAX_CONNECTIONS = 16  # a scraper or two, and room for a person with curl
CONNECTION_TIMEOUT_S = 5.0
CONNECTION_DEADLINE_S = 10.0
LABEL_MAX = 200  # characters of a label value
REQUEST_HEAD_BYTES = 16 << 10  # a scrape's request line and headers are a few hundred bytes


def label(value: object) -> str:
    """A label value as text Prometheus can carry: a lone surrogate (a name decoded with
    surrogateescape, or sent as JSON's \\udcff) and any control character escaped, cut at LABEL_MAX."""
    text = str(value or "").encode("utf-8", "backslashreplace").decode("utf-8")
    return printable_field(text)[:LABEL_MAX]


class MetricsUnavailable(Exception):
    """The address is well formed but cannot be bound now (another local user may hold the port):
    the worker starts without metrics rather than not at all."""


class AgentMetrics:
    def __init__(self, registry: Any):
        from prometheus_client import Counter, Gauge, Histogram

        self.registry = registry
        self.kills = Counter(
            "oomlab_oom_kills",
            "Worker processes and the programs their tasks started, killed (OOM or SIGKILL)",
            ["task", "queue", "role"],
            registry=registry,
        )
        self.peak = Histogram(
            "oomlab_task_peak_bytes",
            "Each finished or killed task's exact peak (its leaf cgroup's, else its process's VmHWM)",
            ["task"],
            buckets=_PEAK_BUCKETS,
            registry=registry,
        )
        self.detection = Histogram(
            "oomlab_detection_seconds",
            "From the kernel's kill to the agent seeing it",
            buckets=_DETECTION_BUCKETS,
            registry=registry,
        )
        self.dead = Counter(
            "oomlab_dead_lettered", "Tasks dead-lettered by the delivery cap", ["task"], registry=registry
        )
        self.memory = Gauge("oomlab_worker_memory_bytes", "The worker's memory cgroup usage", registry=registry)
        self.limit = Gauge("oomlab_worker_memory_limit_bytes", "The worker's memory cgroup limit", registry=registry)

    @classmethod
    def serve(cls, host: str, port: int) -> AgentMetrics:
        try:
            from prometheus_client import CollectorRegistry, make_wsgi_app
        except ImportError:
            raise BadInput("--metrics needs prometheus-client: pip install 'oomlab[agent]'") from None
        metrics = cls(CollectorRegistry())
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
            server_class = type("MetricsServer", (MetricsServer,), {"address_family": family})
            server: WSGIServer = make_server(host, port, make_wsgi_app(metrics.registry), server_class, QuietHandler)
        except OSError as exc:
            taken = "is in use by another program" if exc.errno == errno.EADDRINUSE else "cannot be served"
            raise MetricsUnavailable(f"--metrics {host}:{port} {taken} ({exc.strerror or exc})") from None
        threading.Thread(target=server.serve_forever, name="oomlab-agent-metrics", daemon=True).start()
        return metrics

    def attach(self, watcher: Any, repairer: Any) -> None:
        """Kills counted after their repair; memory read at each scrape."""
        repairer.listeners.append(self.on_kill)
        watcher.task_listeners.append(self.on_task_end)
        self.memory.set_function(lambda: watcher.memory()[0] or 0)
        self.limit.set_function(lambda: watcher.memory()[1] or 0)

    def on_task_end(self, task: str, peak_bytes: int) -> None:
        """From the watcher's thread, per finished task: an observation, no I/O."""
        self.peak.labels(task=label(task)).observe(peak_bytes)

    def on_kill(self, kill: Kill) -> None:
        task = label(kill.task_name)
        self.kills.labels(task=task, queue=label(kill.queue), role=label(kill.role)).inc()
        if (
            kill.peak_bytes is not None and kill.task_name and kill.role != "descendant"
        ):  # a descendant's task ends later
            self.peak.labels(task=task).observe(kill.peak_bytes)
        if kill.detection_s is not None:
            self.detection.observe(kill.detection_s)
        if "dead_lettered" in kill.outcome:
            self.dead.labels(task=task).inc()


def _cut(request: socket.socket) -> None:
    """A connection ended under its thread: the thread's read returns, and it ends and closes it."""
    try:
        request.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _CappedReader:
    """A connection's reads, `left` bytes in all: past them a read returns b"", which ends the headers
    (or the request line) there."""

    def __init__(self, raw: Any, left: int):
        self._raw, self._left = raw, left

    def readline(self, size: int | None = -1) -> bytes:
        return self._take(self._raw.readline, size)

    def read(self, size: int | None = -1) -> bytes:
        return self._take(self._raw.read, size)

    def _take(self, read: Any, size: int | None) -> bytes:
        if self._left <= 0:
            return b""
        data: bytes = read(self._left if size is None or size < 0 else min(size, self._left))
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._raw.close()


class QuietHandler(WSGIRequestHandler):
    """One request per connection, each read bounded; no log line per request (a scraper's every few
    seconds, or a stranger's, would fill the agent's log)."""

    timeout = CONNECTION_TIMEOUT_S

    def setup(self) -> None:
        super().setup()
        self.rfile = _CappedReader(self.rfile, REQUEST_HEAD_BYTES)  # type: ignore[assignment]

    def parse_request(self) -> bool:
        whole = super().parse_request()
        if whole:
            self.server.request_read(self.request)  # type: ignore[attr-defined]
        return whole

    def log_message(self, format: str, *args: Any) -> None:
        pass


class MetricsServer(ThreadingMixIn, WSGIServer):
    """A thread per connection, at most MAX_CONNECTIONS at once; one older than CONNECTION_DEADLINE_S
    (a client sending a byte now and then) is shut down by the serving loop, which wakes twice a second."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 64  # the listen backlog: connections the kernel holds, not the agent

    def __init__(self, *args: Any, **kwargs: Any):
        self.open: dict[socket.socket, float] = {}  # connection -> when it was accepted, oldest first
        self.requested: set[socket.socket] = set()  # those whose whole request has arrived
        self.lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            return super().get_request()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                time.sleep(0.1)  # the listening socket stays readable: no busy loop while no fd is free
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        evicted: socket.socket | None = None
        with self.lock:
            if len(self.open) >= MAX_CONNECTIONS:
                evicted = next((old for old in self.open if old not in self.requested), None)
                if evicted is not None:
                    del self.open[evicted]  # its place is the new one's; its thread ends at its next read
            refused = len(self.open) >= MAX_CONNECTIONS
            if not refused:
                self.open[request] = time.monotonic()
        if refused:
            self.shutdown_request(request)
            return
        if evicted is not None:
            _cut(evicted)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._forget(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    def request_read(self, request: Any) -> None:
        """The connection's whole request has arrived: it is being served, and keeps its place."""
        with self.lock:
            if request in self.open:
                self.requested.add(request)

    def _forget(self, request: Any) -> None:
        with self.lock:
            self.open.pop(request, None)
            self.requested.discard(request)

    def service_actions(self) -> None:
        cutoff = time.monotonic() - CONNECTION_DEADLINE_S
        with self.lock:
            late = [request for request, accepted in self.open.items() if accepted < cutoff]
        for request in late:
            _cut(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out or went away: nothing to say (any local user can cause it)."""
