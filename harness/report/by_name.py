"""The terminal's table per task name: every task the worker ran, the ones it sent itself (a chord's
parts and callback) included, with the spread of its growth, its tree, its kills and its failures."""

from __future__ import annotations

import math
from collections import Counter

from oomlab.config.sizes import format_size
from oomlab.record.schema import RunRecord, TaskRecord
from rich.table import Table


def nearest_rank(values: list[int], q: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(len(ordered) * q) - 1))]


def by_name_table(record: RunRecord) -> Table | None:
    """None for a run with no task list (a load run has its own table per name)."""
    if not record.tasks:
        return None
    names: dict[str, list[TaskRecord]] = {}
    for task in record.tasks:
        names.setdefault(task.name, []).append(task)
    table = Table(title="per task name: growth above each task's start (exact peaks)", title_justify="left")
    for column in ("task", "n", "p50", "p95", "max", "tree max", "kills", "failures"):
        table.add_column(column, justify="left" if column in ("task", "failures") else "right")
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
            ", ".join(f"{kind} ×{count}" for kind, count in failed.most_common()) or "-",
        )
    return table
