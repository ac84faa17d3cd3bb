"""The probe's line format, in one dependency-free place: the worker writes it, the harness reads it.

Each line is one JSON object: `ev` (one of the names below), `pid`, `t` (CLOCK_MONOTONIC), `wall`
(time.time()), and the event's own fields (e.g. `id`, `name`, `rss`, `hwm`).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, TypedDict

WORKER_READY = "worker_ready"  # the main process: Celery's worker_ready signal, with its RSS
CHILD_INIT = "child_init"  # a pool child finished its init (with its USS)
CHILD_SHUTDOWN = "child_shutdown"  # a pool child is exiting (with its exit code; 155 = recycled)
PRERUN = "prerun"  # a task starts in this process (VmHWM reset just before)
POSTRUN = "postrun"  # a task ended in this process (its exact peak)
SENT = "sent"  # a task sent from inside the worker (a chord's parts, a callback, a retry): its ids


class _Stamp(TypedDict):
    """What every line has."""

    ev: str
    pid: int
    t: float  # CLOCK_MONOTONIC


class ProbeLine(_Stamp, total=False):
    """A line as the harness reads it, decoded once (`decode`): the stamp, and the fields of its
    event. Which fields an event has is the recorder's (oomlab.probe.recorder, .profiler); a reader
    asks for an optional one with `.get`."""

    wall: float  # time.time(): every line the recorder writes has it

    # a task's prerun and postrun
    task_id: str
    name: str | None
    state: str | None  # postrun: SUCCESS, FAILURE, RETRY...
    start_rss: int | None
    peak_reset: bool
    shared_process: bool
    in_flight: list[str]  # the other tasks in the same process at this task's start (or end)
    hwm_before: int | None
    redelivered: bool | None
    delivery_count: int | None
    retries: int | None
    # Celery's links (prerun, and a task the worker sent itself): its sender, its workflow, its group
    parent_id: str | None
    root_id: str | None
    group_id: str | None
    peak_rss: int | None
    end_rss: int | None
    ru_maxrss: int | None
    traced_peak: int | None
    kinds_end: dict[str, Any] | None  # the process's memory by kind at the task's end
    # the task's tree (its pool child's leaf cgroup)
    tree_start: int | None
    tree_end: int | None
    tree_peak: int | None
    tree_peak_exact: bool
    leaf_kills: int | None  # the agent's postrun: the OOM kills the pool child's leaf counted by the task's end
    tree_peak_why: str | None
    tree_why_not: str | None
    tree_kinds_start: dict[str, Any] | None  # the leaf's memory by kind at the task's start
    tree_kinds_end: dict[str, Any] | None
    descendants_alive: list[Any]
    reaped_descendant_peak: int | None
    # the worker's and the pool children's lives
    rss: int | None
    ppid: int
    leaf: dict[str, Any] | None
    pss: int | None
    uss: int | None
    oom_score_adj: int | None  # a pool child's at its start: raised, the kernel takes it before the main process
    exitcode: int | None
    registered: list[str] | None  # worker ready: the task names its app registers
    # --profile's captures
    path: str
    children: dict[str, int]  # the process's children's faults, cpu and maxrss (resource.RUSAGE_CHILDREN)
    overhead_s: float
    runs: int
    bare_s: list[float]
    tracked_s: list[float]
    bare_peak_growth: list[int]
    tracked_peak_growth: list[int]
    peak_growth: int | None
    window: int  # a chosen task's window in its child's capture (the n-th, from 0)
    native: bool
    start_s: float
    setup_peak_growth: int | None


_ENCODER = json.JSONEncoder(default=repr)  # json.dumps(..., default=repr) made one per call: 1.5 µs each


def encode(event: str, **fields: Any) -> bytes:
    """One line, written with a single write(2) so that it is whole in the file or absent."""
    record = {"ev": event, "pid": os.getpid(), "t": time.monotonic(), "wall": time.time(), **fields}
    return (_ENCODER.encode(record) + "\n").encode()


def decode(line: str | bytes) -> ProbeLine | None:
    """A line read back; None for a torn or foreign line (a reader never fails on one): every line
    handed on has its stamp, so a reader indexes `ev`, `pid` and `t` without a check."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("ev"), str):
        return None
    pid, t = record.get("pid"), record.get("t")
    if not isinstance(pid, int) or isinstance(t, bool) or not isinstance(t, (int, float)):
        return None
    line_read: ProbeLine = record  # type: ignore[assignment]  # the stamp checked above; the rest is the recorder's
    return line_read
