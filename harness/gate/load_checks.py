"""Load thresholds (issue 18) checked against a run's `load` section: absolute bounds, no baseline.
A bound on a statistic the run does not have fails: a gate that cannot see cannot pass."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.gate.thresholds import LoadThreshold, Threshold
from harness.gate.verdict import Check
from harness.load.stream import TaskLine
from harness.record import RunRecord

ALL = "(all tasks)"


Thresholds = list[Threshold | LoadThreshold]


def check_load(load: dict[str, Any], default: Thresholds, per_task: dict[str, Thresholds]) -> list[Check]:
    checks = [_check(ALL, threshold, load) for threshold in default if isinstance(threshold, LoadThreshold)]
    for name, thresholds in sorted(per_task.items()):
        figures = (load.get("by_task") or {}).get(name, {})
        checks.extend(_check(name, t, figures) for t in thresholds if isinstance(t, LoadThreshold))
    return checks


def _check(task: str, threshold: LoadThreshold, figures: dict[str, Any]) -> Check:
    current = threshold.current(figures)
    failed = current is None or not threshold.holds(current)
    bound = f"{threshold.op} {threshold.show(threshold.value)}"
    shown = (bound, threshold.show(current) if current is not None else "not measured")
    return Check(task, str(threshold), None, current, failed, shown=shown)


def load_of(record: RunRecord, tasks: Iterable[TaskLine]) -> dict[str, Any]:
    """run.json's `load` section, or one made from the run's tasks when the run was not a load run."""
    if record.load:
        return record.load
    from harness.load.from_tasks import load_from_tasks

    return load_from_tasks(tasks, record.started_mono, len(record.kills))
