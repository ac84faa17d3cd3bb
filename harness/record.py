"""The run record: typed dataclasses for everything a run saw, written to results/<run-id>/run.json.

run.json is rewritten atomically (write + rename) while the run goes on, so a run interrupted at any
moment, even by SIGKILL, leaves the last complete snapshot behind; analyses read only this record.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA = "oomlab.run/2"  # 2: child_uss_bytes (was child_uss_growth_bytes), delivery, state_history, restarts


@dataclass
class Execution:
    """One run of a task in one process, from the probe's prerun/postrun pair."""

    pid: int
    started_mono: float
    started_wall: float
    start_rss_bytes: int | None
    finished_mono: float | None = None
    peak_rss_bytes: int | None = None  # VmHWM since the reset at prerun: exact
    end_rss_bytes: int | None = None
    ru_maxrss_bytes: int | None = None  # the process's lifetime peak (getrusage), never reset
    traced_peak_bytes: int | None = None  # tracemalloc's peak during the task (--tracemalloc)
    state: str | None = None
    killed: bool = False
    redelivered: bool | None = None  # the broker's flag on this delivery
    delivery_count: int | None = None  # RabbitMQ's x-delivery-count (quorum queues)
    retries: int | None = None  # Celery's retry count for this message
    # the task's whole tree: its pool child's leaf memory cgroup (harness.task_tree)
    peak_reset: bool = True  # False: another task shared the process when this one started
    shared_process: bool = False  # ran in the worker's main process (solo, threads, gevent, eventlet)
    in_flight: list[str] = field(default_factory=list)  # other tasks running in the same process meanwhile
    tree_start_bytes: int | None = None
    tree_peak_bytes: int | None = None
    tree_peak_exact: bool = False
    tree_note: str | None = None  # why there is no exact tree figure
    tree_end_bytes: int | None = None
    kinds_end: dict[str, int] | None = None  # the pool process's RSS by kind at the task's end
    tree_kinds_end: dict[str, int] | None = None  # the leaf's usage by kind at the task's end
    descendants_alive: list[dict] = field(default_factory=list)  # still running at the task's end
    reaped_descendant_peak_bytes: int | None = None  # ru_maxrss of reaped children, when it rose


@dataclass
class TaskRecord:
    id: str
    name: str
    label: str
    args: list
    sent_mono: float
    outcome: str = "pending"
    state: str | None = None
    exception: str | None = None
    pid: int | None = None
    start_rss_bytes: int | None = None
    peak_rss_bytes: int | None = None
    peak_above_start_bytes: int | None = None
    peak_is_exact: bool = False
    traced_peak_bytes: int | None = None  # what Python's allocator saw, beside the RSS peak
    peak_note: str | None = None  # why peak_is_exact is false, in one sentence
    # the task's tree: the pool process and everything it started, from its leaf memory cgroup
    tree_peak_above_start_bytes: int | None = None
    tree_peak_is_exact: bool = False
    tree_note: str | None = None
    descendants: list[dict] = field(default_factory=list)  # pid, command, peak_rss_bytes, exact, ended
    killed_descendants: list[dict] = field(default_factory=list)  # OOM-killed processes the task started
    memory_kinds: dict[str, dict] = field(default_factory=dict)  # anon/file/shmem: process_end, tree_end, at_kill
    attempts: int = 0
    executions: list[Execution] = field(default_factory=list)
    state_history: list[tuple[float, str]] = field(default_factory=list)  # (monotonic time seen, state) per change


@dataclass
class ProcessRecord:
    pid: int
    role: str  # main | child
    first_seen_mono: float
    last_seen_mono: float
    command: str = ""
    exited_mono: float | None = None
    exit_code: int | None = None  # a child's comes from worker_process_shutdown: 155 = recycled
    # main only (children reset VmHWM per task): its VmHWM, or the kernel's RSS figure if it was OOM-killed
    peak_rss_bytes: int | None = None
    max_rss_bytes: int | None = None
    max_pss_bytes: int | None = None
    max_uss_bytes: int | None = None
    last_rss_bytes: int | None = None
    tasks_at_peak: list[str] = field(default_factory=list)  # shared-process pools: tasks in flight at its peak
    peak_window_mono: tuple[float, float] | None = None  # when its peak was reached, between two probe readings
    owner_pid: int | None = None  # a descendant: the pool child whose leaf it was born in


@dataclass
class KillRecord:
    pid: int
    role: str
    task_id: str | None
    task_name: str | None
    signal: str
    cause: str  # oom: the kernel chose it | oom_group: killed with its whole group
    kernel_time_mono: float
    kernel_time_source: str  # kmsg | the earliest detector when /dev/kmsg is unreadable
    detected: dict[str, float] = field(default_factory=dict)  # detector -> seconds after kernel time
    detected_mono: dict[str, float] = field(default_factory=dict)
    rss_bytes: int | None = None
    during_startup: bool = False
    kernel_message: str | None = None
    command: str | None = None  # the victim's command (the kernel's comm, or its command line)
    owner_pid: int | None = None  # role descendant: the pool child whose task started it
    kinds: dict[str, int] | None = None  # anon/file/shmem RSS the kernel reported at the kill


@dataclass
class CeleryEvent:
    type: str
    received_mono: float
    timestamp_wall: float | None
    timestamp_mono: float | None  # the sender's clock mapped onto this host's monotonic clock
    hostname: str | None
    uuid: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunRecord:
    run_id: str
    config: dict[str, Any]
    environment: dict[str, Any]
    status: str = "starting"  # starting | running | complete | worker_start_failed | interrupted | error
    message: str | None = None
    started_wall: float = 0.0
    started_mono: float = 0.0
    ended_mono: float | None = None
    worker: dict[str, Any] = field(default_factory=dict)
    group: dict[str, Any] = field(default_factory=dict)
    tasks: list[TaskRecord] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)
    kills: list[KillRecord] = field(default_factory=list)
    celery_events: list[CeleryEvent] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    delivery: dict[str, Any] = field(default_factory=dict)  # the delivery lab's evidence and verdicts
    files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {"schema": SCHEMA, **data}


def write_json_atomic(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=1, default=repr)
        handle.flush()
    os.replace(tmp, path)


def load_run(run_dir: str) -> dict[str, Any]:
    with open(os.path.join(run_dir, "run.json")) as handle:
        return json.load(handle)
