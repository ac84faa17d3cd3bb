"""The processes a task started (a program run with subprocess, a forked helper), as the record
holds them: seen alive by the probe at the task's end, found in the task's leaf by the sampler, or
OOM-killed by the kernel. Born in the task's leaf memory cgroup, so pinned on the task that started
them (oomlab.assemble.outcomes)."""

from __future__ import annotations

from dataclasses import dataclass

from oomlab.record.kinds import KindBytes


@dataclass(frozen=True)
class AliveDescendant:
    """A process still in the task's leaf at task_postrun (oomlab.probe.task_tree)."""

    pid: int
    command: str
    peak_rss: int | None  # its VmHWM, exact; None when it exited before it was read


@dataclass(frozen=True)
class Descendant:
    """A process the task started, with the best figure there is for its peak."""

    pid: int
    command: str  # "?" when the sampler only saw it while its command line read empty
    peak_rss_bytes: int | None
    peak_is_exact: bool  # VmHWM or ru_maxrss; sampled RSS and the kernel's RSS at a kill are not
    ended: str  # exited | running at the task's end | OOM-killed | unknown (the task was killed)


@dataclass(frozen=True)
class KilledDescendant:
    """A process the task started that the kernel OOM-killed (the task itself may have returned)."""

    pid: int
    command: str | None  # the kernel's comm, or its command line
    rss_bytes: int | None  # the RSS the kernel reported at the kill
    kinds: KindBytes | None  # the kernel's anon/file/shmem split at the kill
    kernel_time_mono: float
