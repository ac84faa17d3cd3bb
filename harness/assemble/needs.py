"""What a limit must hold for a task: the part of its tree the kernel cannot reclaim (anon + shmem +
kernel memory in its pool child's leaf), apart from the page cache it touched, which the kernel
reclaims before it kills. The kernel keeps no peak per kind, so the highest is taken from the leaf's
memory.stat sampled during the task, its reading at the task's end and the kernel's figures at a
kill: sampled, never exact."""

from __future__ import annotations

from oomlab.observe.sampler import LeafSeries
from oomlab.probe.task_tree import unreclaimable
from oomlab.record.schema import Execution, KillRecord, TaskRecord


def fill_needs(task: TaskRecord, run: Execution, kill: KillRecord | None, leaves: dict[int, LeafSeries]) -> None:
    start_kinds = run.tree_kinds_start
    start = unreclaimable(start_kinds)
    if start is None or start_kinds is None:
        return  # no leaf (an attached worker, a shared-process pool): only the tree peak, if any
    end = run.finished_mono if run.finished_mono is not None else (kill.kernel_time_mono if kill else float("inf"))
    held: list[int] = []
    cache: list[int] = []
    seen: list[str] = []
    series = leaves.get(run.pid)
    highest = series.highest(run.started_mono, end) if series else None
    if highest is not None:
        held.append(highest[0])
        cache.append(highest[1])
        seen.append("sampled during the task")
    if (at_end := unreclaimable(run.tree_kinds_end)) is not None and run.tree_kinds_end is not None:
        held.append(at_end)
        cache.append(run.tree_kinds_end.get("file", 0))
        seen.append("read at its end")
    if kill is not None and kill.kinds:
        held.append(start + _rise_to_kill(kill.kinds, run))
        seen.append("the killed process's rise to the kernel's figures")
    if not held:
        return
    task.needs_above_start_bytes = max(0, max(held) - start)
    task.page_cache_above_start_bytes = max(0, max(cache, default=0) - start_kinds.get("file", 0))
    task.needs_is_exact = False
    task.needs_note = (
        "the leaf's anon + shmem + kernel memory, "
        + ", ".join(seen)
        + ": the kernel keeps no peak of these, so a rise shorter than a sample can be missed"
    )


def _rise_to_kill(kinds: dict[str, int], run: Execution) -> int:
    """How far the killed process grew in this task: the kernel's anon + file + shmem (its RSS at the
    kill) less its RSS when the task began. The leaf's count at the start cannot stand in for the
    process's: pages it touched before it was moved into the leaf stay charged to the group above."""
    at_kill = kinds.get("anon", 0) + kinds.get("file", 0) + kinds.get("shmem", 0)
    return max(0, at_kill - (run.start_rss_bytes or 0))
