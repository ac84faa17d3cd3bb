"""The safe concurrency of each pool under a limit, from the one-child profile. Prefork follows the
existing plan (a private child per slot); threads and gevent run every task in the main process, so
each slot costs only a task's own growth; solo runs one task at a time (the baseline)."""

from __future__ import annotations

from oomlab.workflows.recommend.capacity import MAX_CONCURRENCY, plan_capacity
from oomlab.workflows.recommend.profile import WorkerProfile

DEFAULT_POOLS = ("prefork", "solo")  # a scenario lists the others its tasks allow in POOLS
IN_PROCESS = ("threads", "gevent")


def pools_allowed(declared: tuple[str, ...] | list[str] | None, asked: list[str] | None) -> list[str]:
    """The pools to compare: those asked for, else those the scenario's POOLS declares, else prefork
    and solo (a task may not be thread- or greenlet-safe unless its scenario says so)."""
    pools = list(asked or declared or DEFAULT_POOLS)
    if "gevent" in pools:
        try:
            import gevent  # noqa: F401
        except ImportError:
            pools.remove("gevent")
    return pools


def slot_bytes(profile: WorkerProfile, pool: str, limit_bytes: int, margin: float) -> int:
    """What one more slot costs: a prefork child at its worst (its private pages after the fork, the
    shared pages its tasks copy, its largest task), else one task's largest growth in the shared process."""
    if pool == "prefork":
        return plan_capacity(profile, limit_bytes, margin).per_child_bytes
    return max(profile.task_need_max, 1)


def safe_concurrency(profile: WorkerProfile, pool: str, limit_bytes: int, margin: float) -> tuple[int, str]:
    """(concurrency, why); 0 when not one task fits."""
    if pool == "prefork":
        plan = plan_capacity(profile, limit_bytes, margin)
        return plan.concurrency, plan.no_safe_setting or plan.reasons[-1]
    usable = limit_bytes - int(limit_bytes * margin) - profile.fixed_bytes - profile.child_idle_uss_bytes
    per_task = slot_bytes(profile, pool, limit_bytes, margin)
    fits = max(0, min(MAX_CONCURRENCY, usable // per_task))
    if fits < 1:
        return 0, f"one task's {per_task} bytes do not fit the {max(0, usable)} bytes left in one process"
    if pool == "solo":
        return 1, "solo runs one task at a time"
    return int(fits), (
        f"{fits} tasks at their largest growth ({per_task} bytes each) fit beside the process itself "
        f"in one {pool} process"
    )
