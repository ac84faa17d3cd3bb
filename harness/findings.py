"""Plain sentences that name the mechanism a run's figures show, each from kernel or probe facts
in the record (never a guess): what recycling could not prevent, what tracemalloc could not see,
where the main process grew."""

from __future__ import annotations

from harness.analysis import EX_RECYCLE
from harness.record import RunRecord
from harness.sizes import format_size


def _recycle_reason(runs: list, limit_kib: int | None, max_tasks: int | None) -> str:
    """Which setting replaced a child, from its own last task: billiard's memory check compares
    ru_maxrss with worker_max_memory_per_child; the task count, with worker_max_tasks_per_child."""
    last = max(runs, key=lambda run: run.started_mono) if runs else None
    if limit_kib and last is not None and (last.ru_maxrss_bytes or 0) > limit_kib * 1024:
        return "memory"
    if max_tasks and len(runs) >= max_tasks:
        return "tasks"
    return "other"


def recycling(record: RunRecord) -> list[str]:
    conf = record.worker.celery_conf
    limit_kib, max_tasks = conf.get("worker_max_memory_per_child"), conf.get("worker_max_tasks_per_child")
    found = []
    runs_by_pid: dict[int, list] = {}
    for task in record.tasks:
        for run in task.executions:
            runs_by_pid.setdefault(run.pid, []).append(run)
    recycled = [p.pid for p in record.processes if p.role == "child" and p.exit_code == EX_RECYCLE]
    reasons = [_recycle_reason(runs_by_pid.get(pid, []), limit_kib, max_tasks) for pid in recycled]
    if reasons.count("memory"):
        found.append(
            f"{reasons.count('memory')} pool children were recycled (exit code {EX_RECYCLE}) after a task left "
            f"their ru_maxrss above worker_max_memory_per_child ({format_size(limit_kib * 1024)})"
        )
    if reasons.count("tasks"):
        found.append(
            f"{reasons.count('tasks')} pool children were recycled (exit code {EX_RECYCLE}) after "
            f"worker_max_tasks_per_child={max_tasks} tasks"
        )
    if reasons.count("other"):
        found.append(
            f"{reasons.count('other')} pool children exited with code {EX_RECYCLE} (recycled) for a reason "
            f"the record does not show"
        )
    if not limit_kib:
        return found
    tasks = {t.id: t for t in record.tasks}
    for kill in record.kills:
        task = tasks.get(kill.task_id)
        if task is None or not task.executions:
            continue
        start = task.executions[-1].start_rss_bytes
        found.append(
            f"{kill.task_name} was killed mid-task at {format_size(kill.rss_bytes)} although "
            f"worker_max_memory_per_child is {format_size(limit_kib * 1024)}: the child started the task at "
            f"{format_size(start)}, and Celery checks the limit only after a task returns"
        )
    return found


def untraced(record: RunRecord) -> list[str]:
    pairs = [
        (t.traced_peak_bytes, t.peak_above_start_bytes)
        for t in record.tasks
        if t.traced_peak_bytes is not None and t.peak_is_exact and t.peak_above_start_bytes
    ]
    if not pairs:
        return []
    traced, real = max(pairs, key=lambda pair: pair[1])
    share = traced / real if real else 0
    return [
        f"the largest task grew RSS by {format_size(real)} while tracemalloc saw {format_size(traced)} "
        f"({share:.0%}); the rest was allocated outside Python's allocator, where tracemalloc and gc cannot see it"
    ]


def main_process(record: RunRecord) -> list[str]:
    """The main process should stay near its size when ready; growth there is messages in flight."""
    peak, ready = record.summary.main_peak_rss_bytes, record.worker.ready_rss_bytes
    if not peak or not ready or peak - ready < max(32 * 1024 * 1024, ready // 2):
        return []
    return [
        f"the worker's main process grew from {format_size(ready)} when ready to {format_size(peak)}: every "
        f"message body passes through it, and it holds up to concurrency × worker_prefetch_multiplier "
        f"prefetched messages at once"
    ]


def slow_growth(record: RunRecord) -> list[str]:
    """A task killed seconds into its run, having grown all along: memory that accumulates."""
    tasks = {t.id: t for t in record.tasks}
    found = []
    for kill in record.kills:
        task = tasks.get(kill.task_id)
        run = task.executions[-1] if task and task.executions else None
        if run is None or run.start_rss_bytes is None or not kill.rss_bytes:
            continue
        elapsed = kill.kernel_time_mono - run.started_mono
        if elapsed >= 2.0:
            rate = (kill.rss_bytes - run.start_rss_bytes) / elapsed
            found.append(
                f"{kill.task_name} was killed {elapsed:.1f} s into its run, having grown by "
                f"{format_size(rate)}/s on average: memory accumulated over the task's life"
            )
    return found


RULES = (recycling, untraced, main_process, slow_growth)


def findings(record: RunRecord) -> list[str]:
    return [sentence for rule in RULES for sentence in rule(record)]
