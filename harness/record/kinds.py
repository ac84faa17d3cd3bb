"""A task's memory of one kind (anon, file, shmem) as far as it was measured. The kernel keeps no
per-kind peak, so these are the two moments the probe reads kinds: the task's end (its leaf's
memory.stat, which covers every process it started, else its pool process's /proc status) and the
OOM kill of its process (the kernel's own split). Neither is a peak: memory a task freed before it
ended is not in `end`; docs/truth.md says which figure predicts a kill."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from oomlab.record.typed_json import OMIT_NONE

KINDS = ("anon", "file", "shmem")
Moment = Literal["end", "at_kill"]
# gate statistics: STAT_end and STAT_at_kill for each kind, e.g. anon_end
MOMENTS: tuple[Moment, ...] = ("end", "at_kill")
KIND_STATS: dict[str, tuple[str, Moment]] = {f"{kind}_{moment}": (kind, moment) for kind in KINDS for moment in MOMENTS}


@dataclass(frozen=True)
class KindBytes:
    """Bytes of each kind at one moment: anonymous, file-backed (shmem excluded), shmem (tmpfs)."""

    anon: int
    file: int
    shmem: int

    @classmethod
    def of(cls, kinds: Mapping[str, int] | None) -> KindBytes | None:
        """From a probe's or the kernel's {anon, file, shmem} reading; None when there was none."""
        if not kinds:
            return None
        return cls(anon=kinds.get("anon", 0), file=kinds.get("file", 0), shmem=kinds.get("shmem", 0))


@dataclass(frozen=True)
class MemoryKinds:
    """A task's kinds at the moments they were read (the ends at task_postrun); a moment not read is
    None, and absent from the JSON. False when no moment was read."""

    process_end: KindBytes | None = field(default=None, metadata=OMIT_NONE)  # its pool process's /proc status
    tree_end: KindBytes | None = field(default=None, metadata=OMIT_NONE)  # its leaf's memory.stat (its whole tree)
    at_kill: KindBytes | None = field(default=None, metadata=OMIT_NONE)  # the kernel's split at its process's kill

    def __bool__(self) -> bool:
        return any(kinds is not None for kinds in (self.process_end, self.tree_end, self.at_kill))


def kind_bytes(memory_kinds: MemoryKinds | None, kind: str, moment: Moment = "end") -> int | None:
    """`kind` bytes at `moment` from a task record's `memory_kinds`: at its end the tree's figure
    (leaf memory.stat) where there is one, else its pool process's; at a kill the kernel's."""
    if kind not in KINDS:
        raise ValueError(f"kind is one of {', '.join(KINDS)}, not {kind!r}")
    if memory_kinds is None:
        return None
    sources = (memory_kinds.tree_end, memory_kinds.process_end) if moment == "end" else (memory_kinds.at_kill,)
    for source in sources:
        if source is not None:
            value: int = getattr(source, kind)
            return value
    return None
