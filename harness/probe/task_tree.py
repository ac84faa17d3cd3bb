"""Runs in a pool child: a leaf memory cgroup of its own under the run's limited group, so a task's
peak covers every process it starts (a program run with subprocess, a forked helper), counted by
the kernel rather than sampled.

The leaf is made when the pool child starts and the child moves itself into it; everything it
forks afterwards is born there. At task_prerun the leaf's peak is reset (v1: writing 0 to
memory.max_usage_in_bytes; v2: writing to memory.peak, Linux 6.12+, per open file) and its usage
read; at task_postrun the peak is read again. Where a peak cannot be reset (v2 before 6.12) the
figure is exact only when the leaf's lifetime peak rose during the task, and the record says so.

Imports only the standard library: it runs inside the user's worker.
"""

from __future__ import annotations

import os
import resource

from oomlab.probe import procfs

LEAF_PARENT_ENV = "OOMLAB_LEAF_PARENT"  # the run's limited group (oomlab.worker.limits.base sets it)
CGROUP_VERSION_ENV = "OOMLAB_CGROUP_VERSION"
_KIND_KEYS = {  # memory.stat keys: (anonymous, all file-backed incl. shmem or cache, shmem)
    1: ("total_rss", "total_cache", "total_shmem"),
    2: ("anon", "file", "shmem"),
}


# v2 kernel memory the kernel cannot reclaim, where memory.stat has no `kernel` line (before 5.18)
_V2_KERNEL_PARTS = ("kernel_stack", "pagetables", "sec_pagetables", "percpu", "sock", "slab_unreclaimable", "vmalloc")


def memory_kinds(stat: bytes | str | None, version: int, kmem: int | None = None) -> dict[str, int] | None:
    """anon / file / shmem bytes from a memory.stat; file excludes shmem (tmpfs pages are counted
    as cache by the kernel, but they cannot be reclaimed without swap). `kernel`: v2's kernel memory
    less its reclaimable slab; v1 keeps it out of memory.stat, so `kmem` (memory.kmem.usage_in_bytes,
    reclaimable slab included) is passed in where it was read."""
    if not stat:
        return None
    text = stat.decode() if isinstance(stat, bytes) else stat
    values = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            values[key] = int(value)
    anon_key, file_key, shmem_key = _KIND_KEYS.get(version, _KIND_KEYS[2])
    if anon_key not in values and version == 1:  # a flat (non-hierarchical) v1 stat
        anon_key, file_key, shmem_key = "rss", "cache", "shmem"
    if anon_key not in values:
        return None
    shmem = values.get(shmem_key, 0)
    kinds = {"anon": values[anon_key], "file": max(0, values.get(file_key, 0) - shmem), "shmem": shmem}
    if version != 1 and "kernel" in values:
        kinds["kernel"] = max(0, values["kernel"] - values.get("slab_reclaimable", 0))
    elif version != 1 and "kernel_stack" in values:
        kinds["kernel"] = sum(values.get(key, 0) for key in _V2_KERNEL_PARTS)
    elif kmem is not None:
        kinds["kernel"] = kmem
    return kinds


def unreclaimable(kinds: dict[str, int] | None) -> int | None:
    """What the kernel cannot take back under the limit without swap: anon + shmem + kernel memory.
    Page cache (`file`) is left out: it is reclaimed before any process is killed."""
    if not kinds or "anon" not in kinds:
        return None
    return kinds["anon"] + kinds.get("shmem", 0) + kinds.get("kernel", 0)


def read_kinds(files: procfs.OpenFiles, directory: str, version: int) -> dict[str, int] | None:
    """A cgroup directory's kinds: its memory.stat, and on v1 its kernel memory counter."""
    stat = files.read(os.path.join(directory, "memory.stat"), 8192)
    kmem = None
    if version == 1:
        data = files.read(os.path.join(directory, "memory.kmem.usage_in_bytes"), 64)
        text = data.strip() if data else b""
        kmem = int(text) if text.isdigit() else None
    return memory_kinds(stat, version, kmem)


def process_kinds(status: bytes | None) -> dict[str, int]:
    """anon / file / shmem resident bytes of one process (/proc/PID/status)."""
    found = procfs.parse_status_fields(status, ("RssAnon", "RssFile", "RssShmem"))
    return {"anon": found.get("RssAnon", 0), "file": found.get("RssFile", 0), "shmem": found.get("RssShmem", 0)}


class TaskTree:
    """One pool child's leaf: made once, reset and read per task."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.version = int(os.environ.get(CGROUP_VERSION_ENV) or 0)
        self.why_not: str | None = None  # why there is no leaf, in one sentence
        self.resettable = False
        self._files = procfs.OpenFiles()
        self._peak_fd: int | None = None
        self._reset_fd: int | None = None  # v1's memory.max_usage_in_bytes, kept open (the agent's lean path)
        self._peak_at_start: int | None = None
        self._children_maxrss = 0
        self._own_peak = 0  # this process's largest VmHWM read at a task's end: its high-water mark so far

    # --- at the pool child's start ------------------------------------------------------------
    def make(self) -> dict:
        """Make the leaf and move this process into it; what happened, for the probe's record."""
        parent = os.environ.get(LEAF_PARENT_ENV)
        if not parent:
            self.why_not = "the worker's group is not oomlab's own (attached or a container): no leaf per pool child"
            return self.describe()
        path = os.path.join(parent, f"leaf-{os.getpid()}")
        try:
            os.mkdir(path)
            with open(os.path.join(path, "cgroup.procs"), "w") as procs:
                procs.write("0")  # this process; its later children are born in the leaf
        except OSError as exc:
            self.why_not = f"could not make a leaf memory cgroup {path}: {exc.strerror or exc}"
            try:
                os.rmdir(path)
            except OSError:
                pass
            return self.describe()
        self.path = path
        self._open_peak()
        return self.describe()

    def _open_peak(self) -> None:
        if self.version == 1:
            self.resettable = True
            return
        try:  # Linux 6.12+: a write resets the peak as this open file sees it
            self._peak_fd = os.open(self._file("memory.peak"), os.O_RDWR | os.O_CLOEXEC)
            os.write(self._peak_fd, b"reset\n")
            self.resettable = True
        except OSError:
            self.resettable = False
            if self._peak_fd is None:
                try:
                    self._peak_fd = os.open(self._file("memory.peak"), os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    self._peak_fd = None

    def describe(self) -> dict:
        return {"path": self.path, "version": self.version, "peak_resettable": self.resettable, "why_not": self.why_not}

    def _file(self, name: str) -> str:
        return os.path.join(self.path or "", name)

    def _int(self, name: str) -> int | None:
        data = self._files.read(self._file(name), 64)
        text = data.strip() if data else b""
        return int(text) if text.isdigit() else None

    def _peak(self) -> int | None:
        if self.version == 1:
            return self._int("memory.max_usage_in_bytes")
        if self._peak_fd is None:
            return None
        try:
            text = os.pread(self._peak_fd, 64, 0).strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def _usage(self) -> int | None:
        return self._int("memory.usage_in_bytes" if self.version == 1 else "memory.current")

    def _kinds(self) -> dict[str, int] | None:
        return read_kinds(self._files, self.path or "", self.version)

    # --- per task -------------------------------------------------------------------------------
    def reset(self) -> dict:
        """At task_prerun: the peak back to the current usage; the usage it starts from."""
        self._children_maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if self.path is None:
            return {}
        if self.version == 1:
            try:
                with open(self._file("memory.max_usage_in_bytes"), "w") as handle:
                    handle.write("0")
            except OSError:
                self.resettable = False
        elif self.resettable and self._peak_fd is not None:
            try:
                os.write(self._peak_fd, b"reset\n")
            except OSError:
                self.resettable = False
        self._peak_at_start = None if self.resettable else self._peak()
        return {"tree_start": self._usage(), "tree_kinds_start": self._kinds()}

    def read(self, own_peak: int | None = None) -> dict:
        """At task_postrun: the leaf's peak since the reset, its usage and kinds, the descendants
        still alive, and the largest exact peak among descendants already reaped. `own_peak` is this
        process's VmHWM now: a program's ru_maxrss starts from its parent's RSS (Linux carries it over
        fork and exec), so a reaped program's figure is its own only when it passed every high-water
        mark of this process; below that it may be the inherited one, and is not given."""
        self._own_peak = max(self._own_peak, own_peak or 0)
        maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        rose = maxrss > self._children_maxrss and maxrss * 1024 > self._own_peak
        reaped_peak = maxrss * 1024 if rose else None
        found: dict = {"reaped_descendant_peak": reaped_peak}
        if self.path is None:
            return {**found, "tree_why_not": self.why_not}
        peak = self._peak()
        exact = self.resettable
        why = None
        if not self.resettable:
            exact = peak is not None and self._peak_at_start is not None and peak > self._peak_at_start
            why = (
                None
                if exact
                else "this kernel cannot reset memory.peak (Linux 6.12+ can) and the leaf's lifetime peak, "
                "set before this task, was not passed during it: the figure is an upper bound"
            )
        return {
            **found,
            "tree_peak": peak,
            "tree_peak_exact": exact,
            "tree_peak_why": why,
            "tree_end": self._usage(),
            "tree_kinds_end": self._kinds(),
            "descendants_alive": self._alive_descendants(),
        }

    # --- the agent's lean path: the peak alone, nothing else read --------------------------------
    def reset_peak_only(self) -> None:
        """At task_prerun under `oomlab agent`: the leaf's peak back to its usage, one write."""
        if self.path is None:
            return
        try:
            if self.version == 1:
                if self._reset_fd is None:
                    self._reset_fd = os.open(self._file("memory.max_usage_in_bytes"), os.O_WRONLY | os.O_CLOEXEC)
                os.write(self._reset_fd, b"0")
            elif self.resettable and self._peak_fd is not None:
                os.write(self._peak_fd, b"reset\n")
        except OSError:
            self.resettable = False
        self._peak_at_start = None if self.resettable else self._peak()

    def exact_peak(self) -> int | None:
        """At task_postrun: the leaf's peak since reset_peak_only, or None when it is not exact."""
        if self.path is None:
            return None
        peak = self._peak()
        if self.resettable or (peak is not None and self._peak_at_start is not None and peak > self._peak_at_start):
            return peak
        return None

    def oom_kills(self) -> int | None:
        """At task_postrun under `oomlab agent`: the OOM kills the leaf has counted (in this pool
        child's tree), one pread: the agent names the task of a program killed and gone before it
        read the kill by the first task that ended with the leaf counting it."""
        if self.path is None:
            return None
        data = self._files.read(self._file("memory.oom_control" if self.version == 1 else "memory.events"), 512)
        for line in (data or b"").splitlines():
            key, _, value = line.partition(b" ")
            if key == b"oom_kill" and value.strip().isdigit():
                return int(value)
        return None

    def _alive_descendants(self) -> list[dict]:
        try:
            with open(self._file("cgroup.procs")) as procs:
                pids = [int(pid) for pid in procs.read().split()]
        except OSError:
            return []
        alive = []
        for pid in pids:
            if pid == os.getpid():
                continue
            status = procfs.status_fields(pid, ("VmHWM",))
            alive.append({"pid": pid, "command": procfs.command_line(pid), "peak_rss": status.get("VmHWM")})
        return alive
