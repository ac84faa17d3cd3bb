"""Which allocation sites grew between a baseline and a run, when both were profiled (--profile):
the gate says *where* a task's memory grew, beside *how much*."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol

from oomlab.config.sizes import format_size
from oomlab.record.profile import AllocationSite

SITES_LISTED = 5


class Profiled(Protocol):
    """What grown_sites reads of a task name's stats (oomlab.workflows.gate.stats.TaskStats)."""

    @property
    def sites(self) -> dict[str, int]: ...


def site_key(site: AllocationSite) -> str:
    """`function (dir/file.py)`: no line number and no checkout path, so a site keeps its name across
    edits above it and across machines."""
    tail = os.path.join(*site.file.split(os.sep)[-2:]) if os.sep in site.file else site.file
    return f"{site.function} ({tail})"


def sites_held(top_allocations: list[list[AllocationSite]]) -> dict[str, int]:
    """Bytes each site held at the task's peak (one list of sites per task), the most over the tasks
    of one name."""
    held: dict[str, int] = {}
    for sites in top_allocations:
        per_task: dict[str, int] = {}
        for site in sites:
            per_task[site_key(site)] = per_task.get(site_key(site), 0) + site.bytes
        for key, size in per_task.items():
            held[key] = max(held.get(key, 0), size)
    return held


def grown_sites(
    baseline: Mapping[str, Profiled], current: Mapping[str, Profiled], top: int = SITES_LISTED
) -> list[str]:
    """One line per site that held more than in the baseline, the largest growth first; tasks whose
    baseline has no profile are left out (nothing to compare with)."""
    growth = []
    for name, now in current.items():
        before = baseline.get(name)
        if before is None or not before.sites or not now.sites:
            continue
        for key, size in now.sites.items():
            grew = size - before.sites.get(key, 0)
            if grew > 0:
                growth.append((grew, name, key, before.sites.get(key, 0), size))
    growth.sort(reverse=True)
    return [
        f"{name}: {key} held {format_size(was)} → {format_size(size)} at the peak (+{format_size(grew)})"
        for grew, name, key, was, size in growth[:top]
    ]
