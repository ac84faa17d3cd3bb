"""A `load` section for a run that was not a load run (a plan replay, a pytest session): the same
statistics, from its task records, so load thresholds read the same figures whatever sent the tasks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from oomlab.record.load import LoadSection
from oomlab.record.stream import TaskLine
from oomlab.run.load.stats import NameStats, total_of


def load_from_tasks(tasks: Iterable[TaskLine], started_mono: float, kills: int) -> LoadSection:
    """`tasks` as oomlab.record.stream reads them (line_of a plan run's records: a task oomlab did not
    send has no queue wait)."""
    by_name: dict[str, NameStats] = {}
    for task in tasks:
        stats = by_name.setdefault(task.name or "?", NameStats())
        if task.sent_mono is None:
            continue
        stats.sent(task.sent_mono - started_mono)
        latencies = {"queue_wait": task.queue_wait_s, "run_time": task.run_time_s, "end_to_end": task.end_to_end_s}
        peak = task.peak_rss_bytes if task.peak_is_exact else None
        ended = task.finished_mono if task.finished_mono is not None else task.sent_mono
        stats.final(task.outcome or "unfinished", ended - started_mono, latencies, peak, task)
    total = total_of(by_name)
    sent_count = total.counts["sent"]
    return replace(
        LoadSection.of(total.figures()),
        calls_from="the run's task records (not a load run)",
        oom_kills=kills,
        oom_kills_per_1000_tasks=round(1000 * kills / sent_count, 3) if sent_count else None,
        by_task={name: stats.figures() for name, stats in sorted(by_name.items())},
    )
