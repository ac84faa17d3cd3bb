"""The capacity plan, computed from a measured profile: how many pool children fit the limit, the
worker_max_memory_per_child that bounds growth without recycling after every task, a
worker_max_tasks_per_child where a leak is found, and the rules operators use today beside it.

The model: the group needs `fixed` (main process and shared pages) plus, per child, its private
pages at their worst (its pages once started plus the largest task's growth). A margin of the limit is
kept for page cache, allocator slack and what one run cannot show.

A child's pages once started are the larger of its USS after the fork and its share of the group's
high-water mark while N children start together (oomlab.workflows.recommend.startup_cost): Celery's pool
collects garbage in the main process before every fork, so each child keeps its own copy of heap
pages it would otherwise share. Recycling re-pays that cost, never twice at once for one slot:
billiard forks a replacement only once the old child has exited and been reaped
(Pool._maintain_pool: _join_exited_workers, then _repopulate_pool), so the old child's pages are
freed before the new child's are made."""

from __future__ import annotations

from dataclasses import dataclass, field

from oomlab.config.sizes import format_size
from oomlab.workflows.recommend.profile import WorkerProfile

MIB = 1024 * 1024
LEAK_ROOM = 0.25  # with a leak, each child is planned this much room beyond its largest task, for recycling to bound
MAX_CONCURRENCY = 64


@dataclass
class CapacityPlan:
    limit_bytes: int
    margin_bytes: int
    concurrency: int  # 0: no safe setting
    per_child_bytes: int
    fixed_bytes: int
    max_memory_per_child_kib: int | None = None
    max_tasks_per_child: int | None = None
    reasons: list[str] = field(default_factory=list)
    no_safe_setting: str | None = None
    rule_of_thumb: int = 0  # floor(limit / per-worker RSS as ps shows it)
    rule_of_thumb_worker_bytes: int = 0

    def usage_at(self, concurrency: int) -> int:
        return self.fixed_bytes + concurrency * self.per_child_bytes


def plan_capacity(
    profile: WorkerProfile,
    limit_bytes: int,
    margin_fraction: float,
    run_at: int | None = None,
    fixed_variant: str | None = None,
) -> CapacityPlan:
    """`run_at`: the concurrency the worker will run at, when not the largest safe one (a cap, a step
    up): the recycling settings then follow each child's share at that concurrency. `fixed_variant`:
    the scenario's variant that fixes its memory, when it has one and this is not it."""
    margin = int(limit_bytes * margin_fraction)
    usable = limit_bytes - margin - profile.fixed_bytes
    per_child = int(profile.per_child_bytes * (1 + LEAK_ROOM)) if profile.leaking else profile.per_child_bytes
    concurrency = max(0, min(MAX_CONCURRENCY, usable // per_child)) if per_child else 0
    worker_rss = profile.child_start_rss_bytes + profile.marginal(50)
    plan = CapacityPlan(
        limit_bytes,
        margin,
        int(concurrency),
        per_child,
        profile.fixed_bytes,
        rule_of_thumb=int(limit_bytes // worker_rss) if worker_rss else 0,
        rule_of_thumb_worker_bytes=worker_rss,
    )
    if profile.leaking:
        killed = (
            f"; {'that mark and the OOM kill are' if profile.kills else 'that mark is'} the leak's doing, which recycling "
            f"bounds, so each child is planned {LEAK_ROOM:.0%} above its largest task"
        )
    elif profile.kills:
        killed = (
            f"; a task was OOM-killed holding {format_size(profile.killed_task_rss_bytes)} RSS, so its child "
            f"needs more than that"
        )
    else:
        killed = ""
    plan.reasons.append(
        f"the group needs {format_size(profile.fixed_bytes)} before any task (main process and shared pages) and "
        f"{format_size(per_child)} per child at its worst ({_started(profile)} + "
        f"{format_size(profile.task_need_max)} for the largest task that finished ({_tree(profile)}), or the "
        f"{format_size(profile.child_max_uss_bytes)} private high-water mark{killed}); {format_size(margin)} "
        f"({margin_fraction:.0%}) of the limit is kept as margin"
    )
    if profile.page_cache_max_bytes:
        plan.reasons.append(
            f"page cache is headroom, not need: a task touched up to {format_size(profile.page_cache_max_bytes)} of it, "
            f"which the kernel reclaims under the limit before it kills"
        )
    if concurrency < 1:
        plan.no_safe_setting = _no_safe_setting(plan, profile, usable, margin_fraction, fixed_variant)
        return plan
    share = usable // (run_at or concurrency)
    plan.reasons.append(
        f"{concurrency} × {format_size(per_child)} + {format_size(profile.fixed_bytes)} = "
        f"{format_size(plan.usage_at(concurrency))} fits under {format_size(limit_bytes - margin)}; "
        f"{concurrency + 1} children would need {format_size(plan.usage_at(concurrency + 1))}"
    )
    _recycling(plan, profile, share)
    return plan


def _no_safe_setting(
    plan: CapacityPlan, profile: WorkerProfile, usable: int, margin_fraction: float, fixed_variant: str | None
) -> str:
    """Why no concurrency fits, in what was measured: the task, what the measuring run at concurrency 1
    saw (killed or not), what the rule of thumb would need, and what to do."""
    at_least = "more than " if profile.kills else ""
    name = profile.killed_task if profile.kills and not profile.leaking else profile.largest_task
    task = f"one task, {name}," if name else "one task"
    need = plan.fixed_bytes + plan.per_child_bytes + plan.margin_bytes
    if profile.kills:
        seen = f"the measuring run at concurrency 1 saw {profile.kills} OOM kill(s)"
    elif plan.usage_at(1) <= plan.limit_bytes:
        seen = (
            f"the measuring run at concurrency 1 finished its {profile.tasks} tasks without an OOM kill, but one "
            f"child needs {format_size(plan.usage_at(1))} of the limit: into the {format_size(plan.margin_bytes)} "
            f"({margin_fraction:.0%}) margin kept for page cache, allocator slack and what one run cannot show"
        )
    else:
        seen = f"the measuring run at concurrency 1 finished its {profile.tasks} tasks without an OOM kill"
    rule = (
        f"; the rule of thumb's {plan.rule_of_thumb} would need {format_size(plan.usage_at(plan.rule_of_thumb))}"
        if plan.rule_of_thumb > 1
        else ""
    )
    fixes = [
        f"route {name or 'that task'} to its own queue served by a worker class limited to "
        f"{at_least}{format_size(need)} (concurrency 1)",
        "process its input in chunks",
    ]
    if fixed_variant:
        fixes.append(f"use the scenario's {fixed_variant} variant")
    return (
        f"{task} needs {at_least}{format_size(plan.per_child_bytes)} in its child, more than the "
        f"{format_size(max(0, usable))} the {format_size(plan.limit_bytes)} limit leaves after the worker itself "
        f"and the margin: no concurrency is safe; {seen}{rule}. "
        f"Route {', '.join(fixes[:-1])[len('route ') :]} or {fixes[-1]}"
    )


def _recycling(plan: CapacityPlan, profile: WorkerProfile, share: int) -> None:
    """Celery compares worker_max_memory_per_child with ru_maxrss (KiB), the child's lifetime peak RSS,
    shared pages included, after each task only: the threshold sits at the child's RSS share of the
    limit, and must stay above the RSS after a normal task or the child is replaced after every one."""
    rss_budget = profile.child_start_rss_bytes + max(0, share - profile.child_start_bytes)
    normal = profile.child_start_rss_bytes + profile.marginal(95)
    if rss_budget <= normal:
        plan.reasons.append(
            f"no worker_max_memory_per_child: the child's share ({format_size(rss_budget)} RSS) is "
            f"below its RSS after a p95 task ({format_size(normal)}), so it would recycle after most tasks"
        )
    else:
        plan.max_memory_per_child_kib = rss_budget // 1024
        plan.reasons.append(
            f"worker_max_memory_per_child={plan.max_memory_per_child_kib} KiB ({format_size(rss_budget)}): the child's "
            f"{format_size(share)} share of the limit in RSS terms ({format_size(profile.child_start_rss_bytes)} RSS at "
            f"rest, shared pages included, as ru_maxrss counts them); a p95 task leaves ru_maxrss at {format_size(normal)}, "
            f"so the child is not replaced after every task. Celery checks only after a task returns: it bounds "
            f"growth between tasks, never one task's peak"
        )
    if profile.leaking:
        room = share - profile.child_start_bytes - profile.task_need_max
        tasks = int(room // profile.leak_bytes_per_task) if room > 0 else 1
        plan.max_tasks_per_child = max(1, tasks)
        plan.reasons.append(
            f"a leak of {format_size(int(profile.leak_bytes_per_task))} per task{f' ({profile.leak_note})' if profile.leak_note else ''}: "
            f"worker_max_tasks_per_child={plan.max_tasks_per_child} replaces the child before it "
            f"outgrows its {format_size(max(0, room))} of room; billiard forks the replacement only once the old "
            f"child has exited, so a slot never holds two children, and each replacement pays the "
            f"{format_size(profile.child_start_bytes)} start-up planned above"
        )
    elif profile.leak_note:
        plan.reasons.append(f"no worker_max_tasks_per_child: {profile.leak_note}")


def _tree(profile: WorkerProfile) -> str:
    """Where the largest task's growth was measured."""
    if max(profile.tree_needs, default=0) > profile.marginal_max:
        return (
            "its whole tree: what the kernel cannot reclaim (anon + shmem + kernel memory) in its pool child's "
            "leaf cgroup, programs it ran and pools inside it included; page cache left out"
        )
    return "its pool process's exact peak, above its whole tree's unreclaimable memory"


def _started(profile: WorkerProfile) -> str:
    """The start-up figure the plan used, and where it was measured."""
    idle = f"{format_size(profile.child_idle_uss_bytes)} private after the fork"
    startup = profile.startup
    if startup is None or profile.child_start_bytes <= profile.child_idle_uss_bytes:
        return idle
    together = f"{startup.children} children starting together" if startup.children > 1 else "one child starting"
    return (
        f"{format_size(profile.child_start_bytes)} once started: {together} took the group to "
        f"{format_size(startup.peak_bytes)} before any task and the largest held "
        f"{format_size(startup.largest_child_bytes)} private, above the {idle} of one child alone"
    )


def recycling_settings(max_memory_per_child_kib: int | None, max_tasks_per_child: int | None) -> dict[str, int]:
    """The plan's recycling as Celery settings: what the trials run with and what the hand-over writes."""
    settings = {}
    if max_memory_per_child_kib:
        settings["worker_max_memory_per_child"] = max_memory_per_child_kib
    if max_tasks_per_child:
        settings["worker_max_tasks_per_child"] = max_tasks_per_child
    return settings


@dataclass
class VpaAdvice:
    target_bytes: int  # p90 of the group's usage + 15 %
    after_oom_bytes: int | None  # max(peak + 100 MiB, peak x 1.2) once an OOM was seen


def vpa_rule(usage_samples: list[int], peak_at_oom: int | None) -> VpaAdvice:
    """What a VPA-style recommender would set the container's memory to from the same samples."""
    ordered = sorted(usage_samples)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] if ordered else 0
    after = max(peak_at_oom + 100 * MIB, int(peak_at_oom * 1.2)) if peak_at_oom else None
    return VpaAdvice(int(p90 * 1.15), after)
