"""Prometheus /metrics (prometheus-client, the `oomlab[agent]` extra), bound to 127.0.0.1 unless told
otherwise. Labels carry task names, queues and roles, never a task's arguments or any URL."""

from __future__ import annotations

import errno
from typing import Any

from oomlab.agent.kills import Kill
from oomlab.errors import BadInput

_PEAK_BUCKETS = tuple(2**20 * 2**n for n in range(15))  # 1 MiB to 16 GiB: a task's own peak is often a few MiB
_DETECTION_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0)


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
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            raise BadInput("--metrics needs prometheus-client: pip install 'oomlab[agent]'") from None
        metrics = cls(CollectorRegistry())
        try:
            start_http_server(port, addr=host, registry=metrics.registry)
        except OSError as exc:
            taken = "is in use by another program" if exc.errno == errno.EADDRINUSE else "cannot be served"
            raise MetricsUnavailable(f"--metrics {host}:{port} {taken} ({exc.strerror or exc})") from None
        return metrics

    def attach(self, watcher: Any, repairer: Any) -> None:
        """Kills counted after their repair; memory read at each scrape."""
        repairer.listeners.append(self.on_kill)
        watcher.task_listeners.append(self.on_task_end)
        self.memory.set_function(lambda: watcher.memory()[0] or 0)
        self.limit.set_function(lambda: watcher.memory()[1] or 0)

    def on_task_end(self, task: str, peak_bytes: int) -> None:
        """From the watcher's thread, per finished task: an observation, no I/O."""
        self.peak.labels(task=task).observe(peak_bytes)

    def on_kill(self, kill: Kill) -> None:
        task = kill.task_name or ""
        self.kills.labels(task=task, queue=kill.queue or "", role=kill.role).inc()
        if (
            kill.peak_bytes is not None and kill.task_name and kill.role != "descendant"
        ):  # a descendant's task ends later
            self.peak.labels(task=task).observe(kill.peak_bytes)
        if kill.detection_s is not None:
            self.detection.observe(kill.detection_s)
        if "dead_lettered" in kill.outcome:
            self.dead.labels(task=task).inc()
