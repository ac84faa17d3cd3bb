"""A setting's recycling: the one rule both the proving runs and the hand-over use, so that what is
handed over is what was proven (the same limit, pool and concurrency give the same settings)."""

from __future__ import annotations

from oomlab.workflows.recommend.capacity import plan_capacity, recycling_settings
from oomlab.workflows.recommend.profile import WorkerProfile


def setting_recycling(
    profile: WorkerProfile, limit_bytes: int, margin: float, pool: str, concurrency: int
) -> dict[str, int]:
    """Celery's recycling settings for this pool at this concurrency under `limit_bytes`: each child's
    share is the limit's at the concurrency it runs at, not at the largest safe one. Prefork only:
    the other pools have no children to recycle."""
    if pool != "prefork":
        return {}
    plan = plan_capacity(profile, limit_bytes, margin, run_at=concurrency)
    return recycling_settings(plan.max_memory_per_child_kib, plan.max_tasks_per_child)
