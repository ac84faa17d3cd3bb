"""Each task's outcome from what the backend says, what the probe saw, and the kills."""

from __future__ import annotations

from harness.record import Execution, KillRecord, TaskRecord

OUTCOMES = ("succeeded", "failed", "killed", "requeued", "stuck", "never_started")
FINAL_STATES = ("SUCCESS", "FAILURE", "REVOKED")


def describe_exception(result) -> str | None:
    if isinstance(result, BaseException):
        return f"{type(result).__name__}: {result}"
    if isinstance(result, dict) and "exc_type" in result:
        return f"{result['exc_type']}: {result.get('exc_message')}"
    return None if result is None else str(result)


def classify(state: str | None, exception: str | None, runs: list[Execution], killed: bool) -> str:
    """succeeded | failed | killed | requeued | stuck (STARTED, no one will finish it) | never_started.

    A FAILURE caused by the worker process dying is `killed`. A task with no final state that was
    killed and started again is `requeued`; started but not final is `stuck`."""
    if state == "SUCCESS":
        return "succeeded"
    if state in ("FAILURE", "REVOKED"):
        return "killed" if exception and "WorkerLostError" in exception else "failed"
    if killed and len(runs) > 1:
        return "requeued"
    if runs or state == "STARTED":
        return "stuck"
    return "never_started"


def fill_task(
    task: TaskRecord, state: str | None, exception: str | None, runs: list[Execution], kills: list[KillRecord]
) -> None:
    killed_pids = {k.pid for k in kills if k.task_id == task.id}
    for run in runs:
        run.killed = run.pid in killed_pids and run.finished_mono is None
    task.state, task.exception, task.executions, task.attempts = state, exception, runs, len(runs)
    task.outcome = classify(state, exception, runs, bool(killed_pids))
    if not runs:
        return
    last = runs[-1]
    task.pid, task.start_rss_bytes = last.pid, last.start_rss_bytes
    task.traced_peak_bytes = last.traced_peak_bytes
    if last.peak_rss_bytes is not None:
        task.peak_rss_bytes, task.peak_is_exact = last.peak_rss_bytes, True
    else:  # killed mid-task: the best evidence is the RSS the kernel reported at the kill
        rss = next((k.rss_bytes for k in kills if k.pid == last.pid and k.task_id == task.id), None)
        task.peak_rss_bytes, task.peak_is_exact = rss, False
    if task.peak_rss_bytes is not None and task.start_rss_bytes is not None:
        task.peak_above_start_bytes = task.peak_rss_bytes - task.start_rss_bytes
