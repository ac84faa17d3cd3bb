"""The sentences a profile is told in, shared by the terminal, pytest's failure message and the gate."""

from __future__ import annotations

import os
from collections.abc import Iterable

from oomlab.config.durations import format_seconds
from oomlab.config.sizes import format_size
from oomlab.record.profile import AllocationSite, ProfileCost
from oomlab.record.schema import TaskRecord

SITES_SHOWN = 3


def short_path(path: str) -> str:
    """A library file from its package (numpy/_core/numeric.py), the user's relative to the working
    directory when it is inside it, anything else whole."""
    for marker in ("site-packages/", "dist-packages/"):
        if marker in path:
            return path.split(marker, 1)[1]
    relative = os.path.relpath(path) if os.path.isabs(path) else path
    return path if relative.startswith("..") else relative


def where(site: AllocationSite) -> str:
    return f"{site.function} ({short_path(site.file)}:{site.line})"


def site_line(site: AllocationSite) -> str:
    via = f"  via {site.via[-1].split(' (')[0]}" if site.via else ""
    return f"{format_size(site.bytes):>10}  {where(site)}{via}"


def headline(task: TaskRecord) -> str:
    """What memray saw of one task, at its peak or at its kill."""
    profile = task.profile
    held = format_size(profile.held_bytes if profile else None)
    if profile is not None and profile.killed_at_bytes is not None:
        return (
            f"{task.name} {task.id[:8]}: killed at {format_size(profile.killed_at_bytes)}; "
            f"at the last record, {held} were held by:"
        )
    return f"{task.name} {task.id[:8]}: peak {format_size(task.peak_rss_bytes)}; at the high-water mark memray saw {held} held by:"


def task_lines(task: TaskRecord, sites: int = SITES_SHOWN) -> list[str]:
    profile = task.profile
    lines = [headline(task)]
    lines += [f"  {site_line(site)}" for site in task.top_allocations[:sites]]
    if not task.top_allocations:
        lines.append("  (no allocation was held)")
    if profile is None:
        return lines
    if profile.note:
        lines.append(f"  note: {profile.note}")
    gap = profile.last_snapshot_before_kill_s
    if gap is not None:
        lines.append(
            f"  memray records each allocation as it happens; its last RSS snapshot (taken every 10 ms while "
            f"the process gets the CPU) was {format_seconds(gap)} before the kernel's kill"
        )
    if profile.flamegraph:
        lines.append(f"  flame graph: {profile.flamegraph}")
    return lines


def _signed(seconds: float) -> str:
    """A cost; one below zero is the timing's noise (tracked ran faster than bare), not a gain."""
    if seconds <= 0:
        return f"nothing measurable ({format_seconds(seconds)}, within the timing's noise)"
    return "+" + format_seconds(seconds)


def cost_line(cost: ProfileCost | None) -> str | None:
    if cost is None:
        return None
    parts = []
    if cost.per_task_s is not None and cost.noop_bare_s is not None and cost.noop_tracked_s is not None:
        parts.append(
            f"memray costs {_signed(cost.per_task_s)} per task, measured on a no-op task in a pool "
            f"child ({format_seconds(cost.noop_bare_s)} bare, {format_seconds(cost.noop_tracked_s)} tracked "
            f"with its window's two marks, median of {cost.noop_runs} each; "
            f"{'Python and native frames' if cost.native_traces else 'Python frames only'})"
        )
    if cost.per_task_peak_bytes is not None:
        setup = f"; its one-off set-up ({format_size(cost.setup_peak_bytes)})" if cost.setup_peak_bytes else ""
        start = f" in {format_seconds(cost.tracker_start_s)}" if cost.tracker_start_s is not None else ""
        inside = (
            ": the set-up is memory inside the limit, so a worker near its limit can be killed profiled where "
            "it is not otherwise"
            if cost.setup_peak_bytes
            else ""
        )
        parts.append(
            f"it adds {format_size(cost.per_task_peak_bytes)} to a task's exact peak (VmHWM, median){setup} is "
            f"paid as each pool child starts its one tracker{start}, outside any task{inside}"
        )
    if cost.marks_median_s is not None:
        parts.append(
            f"marking the profiled tasks' windows took {format_seconds(cost.marks_median_s)} a task "
            f"(median of {cost.marks_n})"
        )
    if cost.start_stop_median_s is not None:  # a run recorded before the tracker stayed on
        parts.append(
            f"starting and stopping it around the profiled tasks took {format_seconds(cost.start_stop_median_s)} "
            f"(median of {cost.start_stop_n})"
        )
    return "; ".join(parts) or None


def failure_lines(tasks: Iterable[TaskRecord]) -> str:
    """For a failing test's message: where the memory went in each profiled task, or why nothing is shown."""
    profiled = [task for task in tasks if task.profile]
    if not profiled:
        return "memray profiled none of these tasks (run with --oomlab-profile NAME|all)"
    return "where the memory went (memray):\n" + "\n".join(
        f"  {line}" for task in profiled for line in task_lines(task)
    )
