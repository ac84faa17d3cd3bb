"""Split queues: when one task kind's peak dominates (a few tasks need several times the memory of
the rest), every child of a single worker class must be sized for it. Two classes, a small-memory
queue for the rest and a big-memory queue for the heavy kind, can carry the same rate in less
memory. Each class, and the one class for everything it is set against, is planned by the same rule
as `recommend --memory` (plan_capacity) on a profile of its own kinds, at whichever candidate limit
costs it least in total memory, with the fleet's replica arithmetic on its share of the rate. The
figures are a plan: split_proof.py runs each class for real."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from oomlab.config.sizes import format_size
from oomlab.record.digest import TaskDigest
from oomlab.record.stream import TaskLine
from oomlab.workflows.recommend.capacity import plan_capacity, recycling_settings
from oomlab.workflows.recommend.fleet import replicas_for
from oomlab.workflows.recommend.profile import WorkerProfile
from oomlab.workflows.recommend.recycling import setting_recycling

DOMINANT_RATIO = 2.0  # the heavy kind's largest peak at least this many times every other kind's
DOMINANT_SHARE = 0.25  # ... and at most this share of the tasks (else it is the mix, not an outlier)
ONE_QUEUE, SMALL_QUEUE, BIG_QUEUE = "celery", "small", "big"


@dataclass
class KindCost:
    name: str
    tasks: int
    peak_above_start_bytes: int  # the largest exact one
    run_time_s: float  # the median
    peaks: list[int] = field(default_factory=list)  # every exact peak above the task's start
    needs: list[int] = field(default_factory=list)  # its largest task tree's unreclaimable memory above start


@dataclass
class WorkerClass:
    queue: str
    kinds: list[str]
    share: float  # of the tasks
    per_child_bytes: int
    concurrency: int  # 0: its kinds fit under no candidate limit
    replicas: int
    limit_bytes: int
    pool: str = "prefork"
    max_memory_per_child_kib: int | None = None
    max_tasks_per_child: int | None = None
    capacity_per_s: float = 0.0  # concurrency / mean run time: what one replica can finish (arithmetic)
    per_replica_per_s: float = 0.0  # what one replica is sent: its share of the rate over its replicas

    @property
    def total_bytes(self) -> int:
        return self.replicas * self.limit_bytes

    @property
    def recycling(self) -> dict[str, int]:
        return recycling_settings(self.max_memory_per_child_kib, self.max_tasks_per_child)


@dataclass
class SplitPlan:
    dominant: str | None  # the heavy kind, None: no kind dominates
    one_class: list[WorkerClass] = field(default_factory=list)
    two_classes: list[WorkerClass] = field(default_factory=list)
    sentence: str = ""

    @property
    def saving_bytes(self) -> int:
        return _total(self.one_class) - _total(self.two_classes)

    @property
    def routes(self) -> dict[str, str]:
        """task name -> queue: the split's task_routes."""
        return {kind: c.queue for c in self.two_classes for kind in c.kinds}


def _total(classes: list[WorkerClass]) -> int:
    return sum(c.total_bytes for c in classes)


def kind_costs(tasks: Iterable[TaskLine]) -> list[KindCost]:
    """Per task name, from every task of a run (oomlab.record.stream.RunTasks: run.json's list or a load
    run's stream), folded as they are read: a task count, the largest exact growth, the median run time
    (within the histogram's 1 %)."""
    needs: dict[str, int] = {}  # per name, the largest task tree's unreclaimable memory: fixed memory

    def noting(lines: Iterable[TaskLine]) -> Iterable[TaskLine]:
        for task in lines:
            if task.needs_above_start_bytes is not None:
                needs[task.name] = max(needs.get(task.name, 0), task.needs_above_start_bytes)
            yield task

    digest = TaskDigest.of(noting(tasks))
    return [
        KindCost(
            name,
            max(held.above_start.n, held.run_time.n),
            held.above_start.max or 0,
            float(held.run_time.quantile(0.5) or 0.0),
            sorted(held.above_start.counts.elements()),  # a class's profile: a measuring run's tens of tasks
            [needs[name]] if name in needs else [],
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


def class_profile(profile: WorkerProfile, kinds: list[KindCost], every_kind: bool = False) -> WorkerProfile:
    """The measured worker, with only these kinds' exact peaks: a child of the class never runs the
    others, so neither its sampled high-water mark nor a kill of another kind counts. A class that runs
    every kind is the measured worker itself, sized as the fleet table sizes it."""
    if every_kind:
        return profile
    peaks = sorted(p for k in kinds for p in k.peaks)
    needs = sorted(n for k in kinds for n in k.needs)  # the class's own task trees, not every kind's
    return replace(
        profile,
        marginal_peaks=peaks,
        tree_needs=needs,
        peak_rss=[],
        child_max_uss_bytes=0,
        kills=0,
        killed_task_rss_bytes=None,
    )


@dataclass(frozen=True)
class Demand:
    """What every class is sized against: the fleet's rate and the rules of the plan."""

    rate: float
    margin: float
    headroom: float
    max_concurrency: int


def size_class(
    queue: str, kinds: list[KindCost], total_tasks: int, profiles: dict[int, WorkerProfile], demand: Demand
) -> WorkerClass:
    """The class at each candidate limit (one profile measured under each), the cheapest in total memory."""
    share = sum(k.tasks for k in kinds) / total_tasks
    mean_time = sum(k.run_time_s * k.tasks for k in kinds) / max(1, sum(k.tasks for k in kinds))
    options = []
    every_kind = sum(k.tasks for k in kinds) == total_tasks
    for limit, measured in sorted(profiles.items()):
        profile = class_profile(measured, kinds, every_kind)
        plan = plan_capacity(profile, limit, demand.margin)
        concurrency = min(plan.concurrency, demand.max_concurrency)
        recycling = setting_recycling(profile, limit, demand.margin, "prefork", concurrency) if concurrency else {}
        capacity = concurrency / mean_time if mean_time and concurrency else 0.0
        replicas = replicas_for(demand.rate * share, capacity, demand.headroom) if capacity else 0
        options.append(
            WorkerClass(
                queue,
                [k.name for k in kinds],
                share,
                plan.per_child_bytes,
                concurrency,
                replicas,
                limit,
                max_memory_per_child_kib=_above_a_task(recycling.get("worker_max_memory_per_child"), profile, kinds),
                max_tasks_per_child=recycling.get("worker_max_tasks_per_child"),
                capacity_per_s=round(capacity, 3),
                per_replica_per_s=round(demand.rate * share / replicas, 3) if replicas else 0.0,
            )
        )
    return min(options, key=lambda c: (not c.replicas, c.total_bytes, c.replicas, c.limit_bytes))


def _above_a_task(kib: int | None, profile: WorkerProfile, kinds: list[KindCost]) -> int | None:
    """A class's worker_max_memory_per_child is at least a child's start RSS plus its largest task's peak
    above start: below that, Celery replaces the child after every such task (ru_maxrss passes it)."""
    if not kib:
        return kib
    largest = max((k.peak_above_start_bytes for k in kinds), default=0)
    return max(kib, -(-(profile.child_start_rss_bytes + largest) // 1024))


def split_plan(kinds: list[KindCost], profiles: dict[int, WorkerProfile], demand: Demand) -> SplitPlan:
    """`profiles`: the worker measured under each candidate limit."""
    heavy = dominant_kind(kinds)
    if heavy is None or not profiles:
        return SplitPlan(None, sentence="no task kind dominates the peak: one worker class for everything")
    total = sum(k.tasks for k in kinds)
    light = [k for k in kinds if k is not heavy]
    plan = SplitPlan(
        heavy.name,
        one_class=[size_class(ONE_QUEUE, kinds, total, profiles, demand)],
        two_classes=[
            size_class(SMALL_QUEUE, light, total, profiles, demand),
            size_class(BIG_QUEUE, [heavy], total, profiles, demand),
        ],
    )
    rest = max(k.peak_above_start_bytes for k in light)
    plan.sentence = (
        f"{heavy.name} dominates the peak: {heavy.tasks / total:.0%} of the tasks need "
        f"{heavy.peak_above_start_bytes / max(rest, 1):.1f}x the memory of the rest; one class sized for it "
        f"costs {format_size(_total(plan.one_class))}, a small-memory and a big-memory queue "
        f"{format_size(_total(plan.two_classes))}"
    )
    return plan
