"""Figures over a run's record: outcome counts, exact-peak percentiles, the group against its limit."""

from __future__ import annotations

from collections import Counter

from harness.outcomes import OUTCOMES
from harness.record import KillRecord, ProcessRecord, TaskRecord

EX_RECYCLE = 155  # billiard: a child that exits after worker_max_tasks/memory_per_child


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), without needing numpy."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def spread(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else None,
        "n": len(values),
    }


def summarize(tasks: list[TaskRecord], kills: list[KillRecord], limit: int, group_peak: int | None) -> dict:
    counts = Counter(task.outcome for task in tasks)
    exact = [t for t in tasks if t.peak_is_exact and t.peak_rss_bytes is not None]
    latencies: dict[str, list[float]] = {}
    for kill in kills:
        for name, seconds in kill.detected.items():
            latencies.setdefault(name, []).append(seconds)
    return {
        "outcomes": {name: counts.get(name, 0) for name in OUTCOMES},
        "tasks": len(tasks),
        "peak_rss_bytes": spread([t.peak_rss_bytes for t in exact]),
        # every task with a figure, killed ones at the RSS the kernel reported at their kill
        "peak_rss_all_bytes": spread([float(t.peak_rss_bytes) for t in tasks if t.peak_rss_bytes is not None]),
        "peak_above_start_bytes": spread(
            [t.peak_above_start_bytes for t in exact if t.peak_above_start_bytes is not None]
        ),
        "traced_peak_bytes": spread([t.traced_peak_bytes for t in exact if t.traced_peak_bytes is not None]),
        "group_peak_bytes": group_peak,
        "limit_bytes": limit,
        "group_peak_fraction": round(group_peak / limit, 4) if group_peak else None,
        "kills": len(kills),
        "detection_seconds": {name: spread(values) for name, values in sorted(latencies.items())},
    }


def summarize_processes(processes: list[ProcessRecord]) -> dict:
    """Per-process figures: the main process's exact peak, how much each child came to own (a forked
    child starts with next to no private pages, so its USS is its growth since the fork: copy-on-write
    inflation shows here), and children recycled by Celery."""
    main = next((p for p in processes if p.role == "main"), None)
    children = [p for p in processes if p.role == "child"]
    growth = [p.max_uss_bytes for p in children if p.max_uss_bytes is not None]
    return {
        "main_peak_rss_bytes": main.peak_rss_bytes if main else None,
        "child_uss_bytes": spread(growth),
        "child_pss_bytes": spread([p.max_pss_bytes for p in children if p.max_pss_bytes is not None]),
        "children": len(children),
        "children_recycled": sum(1 for p in children if p.exit_code == EX_RECYCLE),
    }
