"""A task's memory of one kind (anon, file, shmem) as far as it was measured. The kernel keeps no
per-kind peak, so these are the two moments the probe reads kinds: the task's end (its leaf's
memory.stat, which covers every process it started, else its pool process's /proc status) and the
OOM kill of its process (the kernel's own split). Neither is a peak: memory a task freed before it
ended is not in `end`; docs/truth.md says which figure predicts a kill."""

from __future__ import annotations

from typing import Any, Literal

KINDS = ("anon", "file", "shmem")
Moment = Literal["end", "at_kill"]
# gate statistics: STAT_end and STAT_at_kill for each kind, e.g. anon_end
MOMENTS: tuple[Moment, ...] = ("end", "at_kill")
KIND_STATS: dict[str, tuple[str, Moment]] = {f"{kind}_{moment}": (kind, moment) for kind in KINDS for moment in MOMENTS}


def kind_bytes(memory_kinds: dict[str, Any] | None, kind: str, moment: Moment = "end") -> int | None:
    """`kind` bytes at `moment` from a task record's `memory_kinds`: at its end the tree's figure
    (leaf memory.stat) where there is one, else its pool process's; at a kill the kernel's."""
    if kind not in KINDS:
        raise ValueError(f"kind is one of {', '.join(KINDS)}, not {kind!r}")
    kinds = memory_kinds or {}
    sources = ("tree_end", "process_end") if moment == "end" else ("at_kill",)
    for source in sources:
        value = (kinds.get(source) or {}).get(kind)
        if value is not None:
            return int(value)
    return None
