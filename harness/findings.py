"""Plain sentences that name the mechanism a run's figures show, each from kernel or probe facts
in the record (never a guess): what recycling could not prevent, what tracemalloc could not see,
how far the sum of RSS overstates the group."""
from __future__ import annotations

from harness.analysis import EX_RECYCLE
from harness.record import RunRecord
from harness.sizes import format_size


def recycling(record: RunRecord) -> list[str]:
    limit_kib = (record.worker.get("celery_conf") or {}).get("worker_max_memory_per_child")
    found = []
    recycled = sum(1 for p in record.processes if p.role == "child" and p.exit_code == EX_RECYCLE)
    if recycled:
        found.append(f"{recycled} pool children were recycled (exit code {EX_RECYCLE}) after a task left them above "
                     f"worker_max_memory_per_child ({format_size(limit_kib * 1024) if limit_kib else 'set'})")
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
            f"{format_size(start)}, and Celery checks the limit only after a task returns")
    return found


def untraced(record: RunRecord) -> list[str]:
    pairs = [(t.traced_peak_bytes, t.peak_above_start_bytes) for t in record.tasks
             if t.traced_peak_bytes is not None and t.peak_is_exact and t.peak_above_start_bytes]
    if not pairs:
        return []
    traced, real = max(pairs, key=lambda pair: pair[1])
    share = traced / real if real else 0
    return [f"the largest task grew RSS by {format_size(real)} while tracemalloc saw {format_size(traced)} "
            f"({share:.0%}); the rest was allocated outside Python's allocator, where tracemalloc and gc cannot see it"]


def shared_pages(record: RunRecord) -> list[str]:
    total = record.summary.get("sum_rss_peak_bytes")
    usage = record.summary.get("group_usage_at_sum_rss_peak_bytes")
    if not total or not usage or total < usage * 1.2:
        return []
    return [f"the processes' RSS added up to {format_size(total)} while the group used {format_size(usage)}: "
            f"pages shared after the fork count once per process in RSS and once in the group"]


def main_process(record: RunRecord) -> list[str]:
    main_peak = record.summary.get("main_peak_rss_bytes")
    start = record.processes[0].first_uss_bytes if record.processes else None
    children = [t.peak_above_start_bytes for t in record.tasks if t.peak_above_start_bytes]
    if not main_peak or not children or not start:
        return []
    if main_peak < 2 * max(children) and main_peak < 128 * 1024 * 1024:
        return []
    return [f"the worker's main process peaked at {format_size(main_peak)}: every message body passes through it, "
            f"and it holds up to concurrency × worker_prefetch_multiplier prefetched messages at once"]


RULES = (recycling, untraced, shared_pages, main_process)


def findings(record: RunRecord) -> list[str]:
    return [sentence for rule in RULES for sentence in rule(record)]
