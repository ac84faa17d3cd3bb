"""What the run record says beyond one pool process's VmHWM: the processes tasks started, the peak
of a process several tasks share and which tasks were in flight then, the group's memory by kind,
and why the worker was lost."""

from __future__ import annotations

import os

from oomlab.assemble.analysis import spread
from oomlab.assemble.outcomes import SHARED_POOLS
from oomlab.probe.events import CHILD_INIT, POSTRUN, PRERUN, ProbeLine
from oomlab.record.reading import open_regular
from oomlab.record.schema import Execution, LeafSummary, ProcessRecord, RunRecord, Summary

LOG_TAIL_BYTES = 1024 * 1024  # Celery's last word is in the log's last lines


def worker_lost_cause(log_path: str) -> str | None:
    """The main process's last word before it exited: Celery logs an `Unrecoverable error` (a task's
    MemoryError, re-raised in the main process by the prefork pool) at CRITICAL."""
    try:  # an attached worker's log is in its share: never a link or a FIFO, only its last MiB read
        with os.fdopen(open_regular(log_path, follow=False), "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - LOG_TAIL_BYTES))
            lines = handle.read(LOG_TAIL_BYTES).decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if "Unrecoverable error:" in line:
            return line.split("Unrecoverable error:", 1)[1].strip()
    return None


def _readings(probe: list[ProbeLine], pid: int) -> list[tuple[float, int, float]]:
    """(time, VmHWM, time of the reset before it) for every VmHWM the probe read in `pid`."""
    readings, reset_at = [], 0.0
    for record in probe:
        if record.get("pid") != pid or record["ev"] not in (PRERUN, POSTRUN):
            continue
        hwm = record.get("hwm_before") if record["ev"] == PRERUN else record.get("peak_rss")
        if hwm:
            readings.append((record["t"], hwm, reset_at))
        if record["ev"] == PRERUN and record.get("peak_reset"):
            reset_at = record["t"]
    return readings


def mark_process_peaks(
    processes: list[ProcessRecord],
    probe: list[ProbeLine],
    executions: dict[str, list[Execution]],
    leaf_of_pid: dict[int, int],
) -> None:
    """Descendants get their role and owner; a process that ran tasks itself (the shared pools) gets
    its peak from every VmHWM reading and the tasks in flight while that peak was reached."""
    pool = {r["pid"] for r in probe if r["ev"] == CHILD_INIT}
    for process in processes:
        owner = leaf_of_pid.get(process.pid)
        if process.role == "child" and owner is not None and owner != process.pid and process.pid not in pool:
            process.role, process.owner_pid = "descendant", owner
        readings = _readings(probe, process.pid)
        if process.role != "main" or not readings:
            continue
        at, hwm, since = max(readings, key=lambda reading: (reading[1], -reading[0]))
        process.peak_rss_bytes = max(process.peak_rss_bytes or 0, hwm)
        process.peak_window_mono = (since, at)
        process.tasks_at_peak = sorted(
            task_id
            for task_id, runs in executions.items()
            for run in runs
            if run.pid == process.pid
            and run.started_mono <= at
            and (run.finished_mono is None or run.finished_mono >= since)
        )


def apply_truth_summary(
    summary: Summary, record: RunRecord, kinds_at_peak: dict[str, int] | None, kinds_max: dict[str, int]
) -> None:
    """Summary figures for the task trees, the peak's scope, and the group's memory by kind."""
    pool = record.config.pool
    tree = [t.tree_peak_above_start_bytes for t in record.tasks if t.tree_peak_is_exact]
    summary.peak_scope = (
        f"process (the {pool} pool runs tasks in the worker's main process)" if pool in SHARED_POOLS else "task"
    )
    summary.tree_peak_above_start_bytes = spread([value for value in tree if value is not None])
    summary.needs_above_start_bytes = spread(
        [t.needs_above_start_bytes for t in record.tasks if t.needs_above_start_bytes is not None]
    )
    summary.page_cache_above_start_bytes = spread(
        [t.page_cache_above_start_bytes for t in record.tasks if t.page_cache_above_start_bytes is not None]
    )
    summary.descendant_kills = sum(1 for k in record.kills if k.role == "descendant")
    summary.group_kinds_at_peak = kinds_at_peak  # sampled with the group's usage, at its highest sample
    summary.group_kinds_max = dict(kinds_max)
    summary.tasks_with_descendants = sum(1 for t in record.tasks if t.descendants)
    notes = sorted({t.tree_note for t in record.tasks if t.executions and t.tree_note})
    summary.leaves = LeafSummary(sum(1 for t in record.tasks if t.tree_peak_is_exact), notes)
