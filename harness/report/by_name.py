"""The terminal's table per task name: every task the worker ran, the ones it sent itself (a chord's
parts and callback) included, with the spread of its growth, its tree, its kills and its failures."""

from __future__ import annotations

import math
from collections import Counter

from oomlab.config.sizes import format_size
from oomlab.record.histogram import RELATIVE_ERROR
from oomlab.record.schema import RunRecord, TaskRecord
from rich.table import Table


def nearest_rank(values: list[int], q: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(len(ordered) * q) - 1))]


def _table(title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("task", "n", "p50", "p95", "max", "tree max", "kills", "failures"):
        table.add_column(column, justify="left" if column in ("task", "failures") else "right")
    return table


def _failures(failed: Counter[str] | dict[str, int]) -> str:
    return ", ".join(f"{kind} ×{count}" for kind, count in Counter(failed).most_common()) or "-"


def by_name_table(record: RunRecord) -> Table | None:
    """A plan run's from its task list, a load run's from its load section's figures per name (in
    fixed memory, within the histogram's relative error; each exact figure is in tasks.jsonl); None
    for a run with neither."""
    if not record.tasks:
        return _load_table(record) if record.load is not None and record.load.by_task else None
    names: dict[str, list[TaskRecord]] = {}
    for task in record.tasks:
        names.setdefault(task.name, []).append(task)
    table = _table("per task name: growth above each task's start (exact peaks)")
    for name, tasks in sorted(names.items()):
        growth = [t.peak_above_start_bytes for t in tasks if t.peak_is_exact and t.peak_above_start_bytes is not None]
        tree = [t.tree_peak_above_start_bytes for t in tasks if t.tree_peak_above_start_bytes is not None]
        kills = sum(1 for k in record.kills if k.task_name == name)
        failed = Counter((t.exception or "?").partition(":")[0] for t in tasks if t.outcome == "failed")
        worker_sent = sum(1 for t in tasks if t.sent_by == "worker")
        table.add_row(
            name + (f" ({worker_sent} sent by tasks)" if worker_sent else ""),
            str(len(tasks)),
            *(format_size(nearest_rank(growth, q)) if growth else "-" for q in (0.5, 0.95)),
            format_size(max(growth)) if growth else "-",
            format_size(max(tree)) if tree else "-",
            str(kills),
            _failures(failed),
        )
    return table


def _load_table(record: RunRecord) -> Table:
    assert record.load is not None
    error = record.load.histogram_relative_error or RELATIVE_ERROR
    table = _table(
        f"per task name: growth above each task's start (exact peaks, quantiles within {error:.0%}, max exact)"
    )
    for name, figures in sorted(record.load.by_task.items()):
        counts = figures.counts
        n = counts.succeeded + counts.failed + counts.killed + counts.unfinished
        growth, tree = figures.peak_above_start_bytes, figures.tree_peak_above_start_bytes
        worker_sent = counts.sent_by_tasks
        table.add_row(
            name + (f" ({worker_sent} sent by tasks)" if worker_sent else ""),
            str(n),
            *(format_size(_int(value)) if growth.n else "-" for value in (growth.p50, growth.p95, growth.max)),
            format_size(_int(tree.max)) if tree.n else "-",
            str(sum(1 for k in record.kills if k.task_name == name)),
            _failures(figures.failures),
        )
    return table


def _int(value: int | float | None) -> int | None:
    return None if value is None else round(value)
