"""Task executions from the probe's records: a prerun opens one, the postrun in the same pid closes
it. An execution left open in a process that died is the task that process was running."""

from __future__ import annotations

from harness.record import Execution


def build_executions(probe: list[dict]) -> dict[str, list[Execution]]:
    by_task: dict[str, list[Execution]] = {}
    for record in probe:
        task_id = record.get("task_id")
        if not task_id:
            continue
        runs = by_task.setdefault(task_id, [])
        if record["ev"] == "prerun":
            runs.append(
                Execution(
                    pid=record["pid"],
                    started_mono=record["t"],
                    started_wall=record["wall"],
                    start_rss_bytes=record.get("start_rss"),
                    redelivered=record.get("redelivered"),
                    delivery_count=record.get("delivery_count"),
                    retries=record.get("retries"),
                )
            )
        elif record["ev"] == "postrun":
            for run in reversed(runs):
                if run.pid == record["pid"] and run.finished_mono is None:
                    run.finished_mono = record["t"]
                    run.peak_rss_bytes = record.get("peak_rss")
                    run.end_rss_bytes = record.get("end_rss")
                    run.ru_maxrss_bytes = record.get("ru_maxrss")
                    run.traced_peak_bytes = record.get("traced_peak")
                    run.state = record.get("state")
                    break
    return by_task


def child_exit_codes(probe: list[dict]) -> dict[int, int]:
    """Exit codes children reported on the way out (worker_process_shutdown); a SIGKILLed child
    reports none."""
    return {r["pid"]: r["exitcode"] for r in probe if r["ev"] == "child_shutdown" and r.get("exitcode") is not None}


def task_names(probe: list[dict]) -> dict[str, str]:
    return {r["task_id"]: r["name"] for r in probe if r.get("task_id") and r.get("name")}


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
