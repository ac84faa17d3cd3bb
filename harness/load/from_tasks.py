"""A `load` section for a run that was not a load run (a plan replay, a pytest session): the same
statistics, from its task records, so load thresholds read the same figures whatever sent the tasks."""

from __future__ import annotations

from collections.abc import Iterable

from harness.load.section import figures_of
from harness.load.stats import NameStats, total_of


def load_from_tasks(tasks: Iterable[dict], started_mono: float, kills: int) -> dict:
    by_name: dict[str, NameStats] = {}
    for task in tasks:
        stats = by_name.setdefault(task.get("name") or "?", NameStats())
        sent = task.get("sent_mono")
        if sent is None:
            continue
        stats.sent(sent - started_mono)
        runs = task.get("executions") or []
        first, last = (runs[0], runs[-1]) if runs else ({}, {})
        started, began, ended = first.get("started_mono"), last.get("started_mono"), last.get("finished_mono")
        # a task oomlab did not send (a pytest session's) has its first start as its send time: its
        # queue wait is unknown, not zero
        unsent = started is not None and sent == started
        latencies = {
            "queue_wait": None if started is None or unsent else started - sent,
            "run_time": None if began is None or ended is None else ended - began,
            "end_to_end": None if ended is None or unsent else ended - sent,
        }
        peak = task.get("peak_rss_bytes") if task.get("peak_is_exact") else None
        stats.final(task.get("outcome") or "unfinished", (ended or sent) - started_mono, latencies, peak)
    total = total_of(by_name)
    sent_count = total.counts["sent"]
    return {
        **figures_of(total),
        "oom_kills": kills,
        "oom_kills_per_1000_tasks": round(1000 * kills / sent_count, 3) if sent_count else None,
        "by_task": {name: figures_of(stats) for name, stats in sorted(by_name.items())},
        "from": "the run's task records (not a load run)",
    }
