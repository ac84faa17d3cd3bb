"""What pool children cost while they start, read from a run's files: the group's exact high-water
mark (the kernel's max_usage_in_bytes, as group.csv records it) between the worker's start and its
first task, less what the worker needs without its children, shared among the children that started.

Why not a child's private pages after the fork: Celery's pool calls gc.collect() in the main process
before every fork (celery/concurrency/asynpool.py; https://github.com/celery/celery/issues/2927), which
writes to the heap pages the children still share with it, so each child forked before another keeps
its own copy of them. One child measured alone never shows this; N children starting together do
(24 MiB each instead of 15 for `leak` here), and so does every replacement a recycling worker forks."""

from __future__ import annotations

import os
from dataclasses import dataclass

from oomlab.probe.events import CHILD_INIT, PRERUN
from oomlab.record.files import csv_rows, read_probe


@dataclass
class StartupCost:
    children: int  # pool children that had started before the first task
    peak_bytes: int  # the group's high-water mark before the first task
    largest_child_bytes: int  # the largest private pages (USS) of one child before the first task
    per_child_bytes: int  # the larger of (peak - the worker's own bytes) / children and that child's USS

    @property
    def measured(self) -> bool:
        return self.children > 0 and self.peak_bytes > 0


def startup_cost(run_dir: str, fixed_bytes: int) -> StartupCost:
    """`fixed_bytes`: the main process and shared pages with no child (the profile's). The peak covers
    any transient of the start-up (a child's init writes, the parent's gc.collect before each fork).
    The share is an average, and the child forked last has copied the least; a replacement forked later
    is an earlier child to the next one, so the largest child's USS (at its init, or sampled before the
    first task) bounds the share from below."""
    probe = read_probe(os.path.join(run_dir, "probe.jsonl"))
    first_task = min((r["t"] for r in probe if r["ev"] == PRERUN), default=None)
    before = [r for r in probe if r["ev"] == CHILD_INIT and (first_task is None or r["t"] < first_task)]
    children = {r["pid"] for r in before}
    largest = max((r.get("uss") or 0 for r in before), default=0)
    for row in csv_rows(os.path.join(run_dir, "samples.csv")):
        if first_task is not None and float(row["t_mono"]) >= first_task:
            break
        if int(row["pid"]) in children and row["uss_bytes"]:
            largest = max(largest, int(row["uss_bytes"]))
    peak = 0
    for row in csv_rows(os.path.join(run_dir, "group.csv")):
        if first_task is not None and float(row["t_mono"]) >= first_task:
            break
        peak = max(peak, int(row["peak_bytes"] or 0))
    share = max(0, peak - fixed_bytes) // len(children) if children else 0
    return StartupCost(len(children), peak, largest, max(share, largest) if children else 0)
