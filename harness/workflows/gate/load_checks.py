"""Load thresholds checked against a run's `load` section: absolute bounds, no baseline.
A bound on a statistic the run does not have fails: a gate that cannot see cannot pass."""

from __future__ import annotations

from collections.abc import Iterable

from oomlab.record.load import LoadSection, NameFigures
from oomlab.record.schema import RunRecord
from oomlab.record.stream import TaskLine
from oomlab.workflows.gate.thresholds import LoadThreshold, Threshold
from oomlab.workflows.gate.verdict import Check

ALL = "(all tasks)"


Thresholds = list[Threshold | LoadThreshold]


def check_load(load: LoadSection | None, default: Thresholds, per_task: dict[str, Thresholds]) -> list[Check]:
    """`load` None: no figures at all, so every load bound fails."""
    checks = [_check(ALL, threshold, load) for threshold in default if isinstance(threshold, LoadThreshold)]
    for name, thresholds in sorted(per_task.items()):
        figures = load.by_task.get(name) if load else None  # a name the run never sent: every bound on it fails
        checks.extend(_check(name, t, figures) for t in thresholds if isinstance(t, LoadThreshold))
    return checks


def _check(task: str, threshold: LoadThreshold, figures: NameFigures | None) -> Check:
    current = threshold.current(figures) if figures is not None else None
    failed = current is None or not threshold.holds(current)
    bound = f"{threshold.op} {threshold.show(threshold.value)}"
    shown = (bound, threshold.show(current) if current is not None else "not measured")
    return Check(task, str(threshold), None, current, failed, shown=shown)


def load_of(record: RunRecord, tasks: Iterable[TaskLine]) -> LoadSection:
    """run.json's `load` section, or one made from the run's tasks when the run was not a load run."""
    if record.load is not None:
        return record.load
    from oomlab.run.load.from_tasks import load_from_tasks

    return load_from_tasks(tasks, record.started_mono, len(record.kills))
