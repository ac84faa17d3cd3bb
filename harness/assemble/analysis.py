"""Figures over a run's record: outcome counts, exact-peak quantiles, the group against its limit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from oomlab.assemble.outcomes import OUTCOMES
from oomlab.record.exact_counts import nearest_rank
from oomlab.record.schema import KillRecord, ProcessRecord, Spread, Summary, TaskRecord

EX_RECYCLE = 155  # billiard: a child that exits after worker_max_tasks/memory_per_child


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by nearest rank; None for no values."""
    return nearest_rank(sorted(values), q / 100) if values else None


def spread(values: Sequence[float]) -> Spread:
    ordered = sorted(values)
    if not ordered:
        return Spread()
    return Spread(p50=nearest_rank(ordered, 0.5), p95=nearest_rank(ordered, 0.95), max=ordered[-1], n=len(ordered))


def summarize(tasks: list[TaskRecord], kills: list[KillRecord], limit: int, group_peak: int | None) -> Summary:
    counts = Counter(task.outcome for task in tasks)
    exact = [t for t in tasks if t.peak_is_exact and t.peak_rss_bytes is not None]
    latencies: dict[str, list[float]] = {}
    for kill in kills:
        for name, seconds in kill.detected.items():
            latencies.setdefault(name, []).append(seconds)
    return Summary(
        outcomes={name: counts.get(name, 0) for name in OUTCOMES},
        tasks=len(tasks),
        peak_rss_bytes=spread([t.peak_rss_bytes for t in exact if t.peak_rss_bytes is not None]),
        # every task with a figure, killed ones at the RSS the kernel reported at their kill
        peak_rss_all_bytes=spread([t.peak_rss_bytes for t in tasks if t.peak_rss_bytes is not None]),
        peak_above_start_bytes=spread(
            [t.peak_above_start_bytes for t in exact if t.peak_above_start_bytes is not None]
        ),
        traced_peak_bytes=spread([t.traced_peak_bytes for t in exact if t.traced_peak_bytes is not None]),
        group_peak_bytes=group_peak,
        limit_bytes=limit,
        group_peak_fraction=round(group_peak / limit, 4) if group_peak else None,
        kills=len(kills),
        detection_seconds={name: spread(values) for name, values in sorted(latencies.items())},
    )


def summarize_processes(processes: list[ProcessRecord], summary: Summary) -> None:
    """Per-process figures: the main process's exact peak, how much each child came to own (a forked
    child starts with next to no private pages, so its USS is its growth since the fork: copy-on-write
    inflation shows here), and children recycled by Celery."""
    main = next((p for p in processes if p.role == "main"), None)
    children = [p for p in processes if p.role == "child"]
    growth = [p.max_uss_bytes for p in children if p.max_uss_bytes is not None]
    summary.main_peak_rss_bytes = main.peak_rss_bytes if main else None
    summary.child_uss_bytes = spread(growth)
    summary.child_pss_bytes = spread([p.max_pss_bytes for p in children if p.max_pss_bytes is not None])
    summary.children = len(children)
    summary.children_recycled = sum(1 for p in children if p.exit_code == EX_RECYCLE)
