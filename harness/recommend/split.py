"""Split queues: when one task kind's peak dominates (a few tasks need several times the memory of
the rest), every child of a single worker class must be sized for it. Two classes, a small-memory
queue for the rest and a big-memory queue for the heavy kind, can carry the same rate in less
memory. Computed from each task name's measured exact peaks and run times, with the fleet's own
replica arithmetic; the figures are a plan, each class is proven like any other setting."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from harness.load.stream import TaskLine
from harness.task_digest import TaskDigest

DOMINANT_RATIO = 2.0  # the heavy kind's largest peak at least this many times every other kind's
DOMINANT_SHARE = 0.25  # ... and at most this share of the tasks (else it is the mix, not an outlier)


@dataclass
class KindCost:
    name: str
    tasks: int
    peak_above_start_bytes: int  # the largest exact one
    run_time_s: float  # the median


@dataclass
class WorkerClass:
    queue: str
    kinds: list[str]
    share: float  # of the tasks
    per_child_bytes: int
    concurrency: int
    replicas: int
    limit_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.replicas * self.limit_bytes


@dataclass
class SplitPlan:
    dominant: str | None  # the heavy kind, None: no kind dominates
    one_class: list[WorkerClass] = field(default_factory=list)
    two_classes: list[WorkerClass] = field(default_factory=list)
    sentence: str = ""

    @property
    def saving_bytes(self) -> int:
        return _total(self.one_class) - _total(self.two_classes)


def _total(classes: list[WorkerClass]) -> int:
    return sum(c.total_bytes for c in classes)


def kind_costs(tasks: Iterable[TaskLine]) -> list[KindCost]:
    """Per task name, from every task of a run (harness.load.stream.RunTasks: run.json's list or a load
    run's stream), folded as they are read: a task count, the largest exact growth, the median run time
    (within the histogram's 1 %)."""
    digest = TaskDigest.of(tasks)
    return [
        KindCost(
            name,
            max(held.above_start.n, held.run_time.n),
            held.above_start.max or 0,
            float(held.run_time.quantile(0.5) or 0.0),
        )
        for name, held in sorted(digest.by_name.items())
    ]


def dominant_kind(kinds: list[KindCost]) -> KindCost | None:
    total = sum(k.tasks for k in kinds)
    if len(kinds) < 2 or not total:
        return None
    heavy = max(kinds, key=lambda k: k.peak_above_start_bytes)
    rest = max(k.peak_above_start_bytes for k in kinds if k is not heavy)
    if heavy.peak_above_start_bytes >= DOMINANT_RATIO * max(rest, 1) and heavy.tasks / total <= DOMINANT_SHARE:
        return heavy
    return None


def _sized(
    queue: str,
    kinds: list[KindCost],
    total_tasks: int,
    rate: float,
    limit_bytes: int,
    usable_bytes: int,
    child_idle_bytes: int,
    headroom: float,
) -> WorkerClass:
    share = sum(k.tasks for k in kinds) / total_tasks
    per_child = child_idle_bytes + max(k.peak_above_start_bytes for k in kinds)
    concurrency = max(0, usable_bytes // per_child) if per_child else 0
    mean_time = sum(k.run_time_s * k.tasks for k in kinds) / max(1, sum(k.tasks for k in kinds))
    per_replica = concurrency / mean_time if mean_time and concurrency else 0.0
    replicas = math.ceil(rate * share * (1 + headroom) / per_replica - 1e-9) if per_replica else 0
    return WorkerClass(
        queue, [k.name for k in kinds], share, per_child, int(concurrency), max(1, replicas), limit_bytes
    )


def split_plan(
    kinds: list[KindCost], rate: float, limit_bytes: int, usable_bytes: int, child_idle_bytes: int, headroom: float
) -> SplitPlan:
    """`usable_bytes`: the limit less its margin and the worker's fixed memory (the prefork model)."""
    heavy = dominant_kind(kinds)
    if heavy is None:
        return SplitPlan(None, sentence="no task kind dominates the peak: one worker class for everything")
    total = sum(k.tasks for k in kinds)
    light = [k for k in kinds if k is not heavy]
    args = (total, rate, limit_bytes, usable_bytes, child_idle_bytes, headroom)
    plan = SplitPlan(
        heavy.name,
        one_class=[_sized("celery", kinds, *args)],
        two_classes=[_sized("small", light, *args), _sized("big", [heavy], *args)],
    )
    rest = max(k.peak_above_start_bytes for k in light)
    plan.sentence = (
        f"{heavy.name} dominates the peak: {heavy.tasks / total:.0%} of the tasks need "
        f"{heavy.peak_above_start_bytes / max(rest, 1):.1f}x the memory of the rest; one class sized for it "
        f"costs {_total(plan.one_class)} bytes, a small-memory and a big-memory queue {_total(plan.two_classes)}"
    )
    return plan
