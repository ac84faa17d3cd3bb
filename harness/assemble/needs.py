"""What a limit must hold for a task: the part of its tree the kernel cannot reclaim (anon + shmem +
kernel memory in its pool child's leaf), apart from the page cache it touched, which the kernel
reclaims before it kills. The kernel keeps no peak per kind, so the highest is taken from the leaf's
memory.stat sampled during the task, its reading at the task's end and the kernel's figures at a
kill: sampled, never exact. One rule for every run: a plan run's records and a load run's lines
(oomlab.run.load.book) both take their figures from `needs_of` and `tree_above_start`."""

from __future__ import annotations

from dataclasses import dataclass

from oomlab.observe.sampler import LeafSeries
from oomlab.probe.task_tree import unreclaimable
from oomlab.record.schema import Execution, KillRecord, TaskRecord


@dataclass(frozen=True, slots=True)
class Needs:
    above_start: int  # unreclaimable above the task's start, at its highest seen
    page_cache_above_start: int
    note: str  # where the figure came from, and why it is not exact


def needs_of(
    start_kinds: dict[str, int] | None,
    highest: tuple[int, int] | None,
    end_kinds: dict[str, int] | None,
    rise_to_kill: int | None,
) -> Needs | None:
    """A task's needs from its leaf's kinds at its start, the highest (unreclaimable, page cache) its
    leaf was sampled at during the task, its kinds at its end, and a killed process's rise (None
    where there is none). None without a leaf at its start (an attached worker, a shared-process
    pool) or without any reading after it."""
    start = unreclaimable(start_kinds)
    if start is None or start_kinds is None:
        return None
    held: list[int] = []
    cache: list[int] = []
    seen: list[str] = []
    if highest is not None:
        held.append(highest[0])
        cache.append(highest[1])
        seen.append("sampled during the task")
    if (at_end := unreclaimable(end_kinds)) is not None and end_kinds is not None:
        held.append(at_end)
        cache.append(end_kinds.get("file", 0))
        seen.append("read at its end")
    if rise_to_kill is not None:
        held.append(start + rise_to_kill)
        seen.append("the killed process's rise to the kernel's figures")
    if not held:
        return None
    return Needs(
        above_start=max(0, max(held) - start),
        page_cache_above_start=max(0, max(cache, default=0) - start_kinds.get("file", 0)),
        note="the leaf's anon + shmem + kernel memory, "
        + ", ".join(seen)
        + ": the kernel keeps no peak of these, so a rise shorter than a sample can be missed",
    )


def tree_above_start(peak: int | None, start: int | None, exact: bool, shared: bool) -> tuple[int | None, bool]:
    """A task's tree (its leaf) at its peak above its start, and whether that is exact: the leaf's
    own peak, reset at the task's start, in a process that ran no other task meanwhile."""
    if peak is None or start is None:
        return None, False
    return peak - start, exact and not shared


def fill_needs(task: TaskRecord, run: Execution, kill: KillRecord | None, leaves: dict[int, LeafSeries]) -> None:
    if unreclaimable(run.tree_kinds_start) is None:
        return  # no leaf (an attached worker, a shared-process pool): only the tree peak, if any
    end = run.finished_mono if run.finished_mono is not None else (kill.kernel_time_mono if kill else float("inf"))
    series = leaves.get(run.pid)
    highest = series.highest(run.started_mono, end) if series else None
    rise = rise_to_kill(kill.kinds, run.start_rss_bytes) if kill is not None and kill.kinds else None
    needs = needs_of(run.tree_kinds_start, highest, run.tree_kinds_end, rise)
    if needs is None:
        return
    task.needs_above_start_bytes = needs.above_start
    task.page_cache_above_start_bytes = needs.page_cache_above_start
    task.needs_is_exact = False
    task.needs_note = needs.note


def rise_to_kill(kinds: dict[str, int], start_rss: int | None) -> int:
    """How far the killed process grew in this task: the kernel's anon + file + shmem (its RSS at the
    kill) less its RSS when the task began. The leaf's count at the start cannot stand in for the
    process's: pages it touched before it was moved into the leaf stay charged to the group above."""
    at_kill = kinds.get("anon", 0) + kinds.get("file", 0) + kinds.get("shmem", 0)
    return max(0, at_kill - (start_rss or 0))
