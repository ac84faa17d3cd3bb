"""Task executions from the probe's records: a prerun opens one, the postrun in the same pid closes
it. An execution left open in a process that died is the task that process was running."""

from __future__ import annotations

from typing import Any

from oomlab.probe.events import CHILD_INIT, CHILD_SHUTDOWN, POSTRUN, PRERUN, SENT, ProbeLine
from oomlab.record.descendants import AliveDescendant
from oomlab.record.schema import Execution


def build_executions(probe: list[ProbeLine]) -> dict[str, list[Execution]]:
    by_task: dict[str, list[Execution]] = {}
    for record in probe:
        task_id = record.get("task_id")
        if not task_id:
            continue
        runs = by_task.setdefault(task_id, [])
        if record["ev"] == PRERUN:
            runs.append(
                Execution(
                    pid=record["pid"],
                    started_mono=record["t"],
                    started_wall=record["wall"],
                    start_rss_bytes=record.get("start_rss"),
                    redelivered=record.get("redelivered"),
                    delivery_count=record.get("delivery_count"),
                    retries=record.get("retries"),
                    parent_id=record.get("parent_id"),
                    root_id=record.get("root_id"),
                    group_id=record.get("group_id"),
                    peak_reset=record.get("peak_reset", True),
                    shared_process=bool(record.get("shared_process")),
                    in_flight=list(record.get("in_flight") or []),
                    tree_start_bytes=record.get("tree_start"),
                    tree_kinds_start=record.get("tree_kinds_start"),
                )
            )
        elif record["ev"] == POSTRUN:
            for run in reversed(runs):
                if run.pid == record["pid"] and run.finished_mono is None:
                    run.finished_mono = record["t"]
                    run.peak_rss_bytes = record.get("peak_rss")
                    run.end_rss_bytes = record.get("end_rss")
                    run.ru_maxrss_bytes = record.get("ru_maxrss")
                    run.traced_peak_bytes = record.get("traced_peak")
                    run.state = record.get("state")
                    _close_tree(run, record)
                    break
    _mark_shared(by_task)
    return by_task


def _mark_shared(by_task: dict[str, list[Execution]]) -> None:
    """In a shared process, every other task whose span overlapped this one's: the probe sees only
    those in flight at its start and end, not one that started and finished in between."""
    shared = [(task_id, run) for task_id, runs in by_task.items() for run in runs if run.shared_process]
    for _, run in shared:
        end = run.finished_mono if run.finished_mono is not None else float("inf")
        for other_id, other in shared:
            other_end = other.finished_mono if other.finished_mono is not None else float("inf")
            overlaps = other.pid == run.pid and other.started_mono < end and other_end > run.started_mono
            if other is not run and overlaps and other_id not in run.in_flight:
                run.in_flight.append(other_id)


def _close_tree(run: Execution, record: ProbeLine) -> None:
    """The postrun's figures for the task's tree (its leaf) and the process's memory by kind."""
    run.in_flight = sorted(set(run.in_flight) | set(record.get("in_flight") or []))
    run.tree_peak_bytes = record.get("tree_peak")
    run.tree_peak_exact = bool(record.get("tree_peak_exact"))
    run.tree_note = record.get("tree_peak_why") or record.get("tree_why_not")
    run.tree_end_bytes = record.get("tree_end")
    run.kinds_end = record.get("kinds_end")
    run.tree_kinds_end = record.get("tree_kinds_end")
    run.descendants_alive = [
        AliveDescendant(pid=int(alive["pid"]), command=alive.get("command") or "", peak_rss=alive.get("peak_rss"))
        for alive in record.get("descendants_alive") or []
    ]
    run.reaped_descendant_peak_bytes = record.get("reaped_descendant_peak")


def pool_children(probe: list[ProbeLine]) -> frozenset[int]:
    """Pool processes: every pid that ran the probe's child_init."""
    return frozenset(r["pid"] for r in probe if r["ev"] == CHILD_INIT)


def leaves(probe: list[ProbeLine]) -> dict[int, dict[str, Any]]:
    """Each pool child's leaf memory cgroup as the probe made it (or why it could not)."""
    return {r["pid"]: leaf for r in probe if r["ev"] == CHILD_INIT and (leaf := r.get("leaf"))}


def child_exit_codes(probe: list[ProbeLine]) -> dict[int, int]:
    """Exit codes children reported on the way out (worker_process_shutdown); a SIGKILLed child
    reports none."""
    return {r["pid"]: code for r in probe if r["ev"] == CHILD_SHUTDOWN and (code := r.get("exitcode")) is not None}


def task_names(probe: list[ProbeLine]) -> dict[str, str]:
    return {task_id: name for r in probe if (task_id := r.get("task_id")) and (name := r.get("name"))}


def sent_in_worker(probe: list[ProbeLine]) -> dict[str, ProbeLine]:
    """Tasks the worker sent itself (a chord's parts and callback, a retry, a task sent from a task),
    by id, with Celery's links: known from the moment they are sent, before any worker takes them."""
    return {task_id: r for r in probe if r["ev"] == SENT and (task_id := r.get("task_id"))}


def running_in(by_task: dict[str, list[Execution]], pid: int, at: float) -> tuple[str, Execution] | None:
    """The task `pid` was running at monotonic time `at` (started before, not finished by then)."""
    best = None
    for task_id, runs in by_task.items():
        for run in runs:
            running = (
                run.pid == pid and run.started_mono <= at and (run.finished_mono is None or run.finished_mono >= at)
            )
            if running and (best is None or run.started_mono > best[1].started_mono):
                best = (task_id, run)
    return best
