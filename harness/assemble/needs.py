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
        held.append(start + kill.kinds.get("anon", 0) + kill.kinds.get("shmem", 0) - _process_share(start_kinds, run))
        seen.append("the kernel's anon + shmem of the killed process")
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


def _process_share(start_kinds: dict[str, int], run: Execution) -> int:
    """The pool process's own anon + shmem at the task's start (its RSS then, at most the leaf's):
    the kill's figure is the process's whole, not its rise."""
    own = run.start_rss_bytes or 0
    return min(own, start_kinds.get("anon", 0) + start_kinds.get("shmem", 0))
