"""What both cgroup versions share: a run's own memory cgroup, its processes and counters.

The subclasses differ only in file names and in how an OOM is signalled (v1 eventfd, v2 inotify).
"""

from __future__ import annotations

import errno
import os
import signal
import time
from typing import Literal

from oomlab.probe.task_tree import CGROUP_VERSION_ENV, LEAF_PARENT_ENV, memory_kinds

OomScope = Literal["process", "group"]
LEAF_PREFIX = "leaf-"  # leaf-<pid>: one pool child and everything it starts; leaf-main on v2


def read_text(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def read_int(path: str) -> int | None:
    text = read_text(path)
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def write_text(path: str, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


def keyed_counters(text: str | None) -> dict[str, int]:
    """`key value` lines (memory.events, memory.oom_control) as a dict."""
    counters: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            counters[parts[0]] = int(parts[1])
    return counters


class CgroupBackend:
    """One run's memory cgroup. Subclasses set the file names of their cgroup version."""

    version: int = 0
    limit_file = ""
    usage_file = ""
    peak_file = ""
    events_file = ""
    oom_notice_precedes_kill = False  # True where the OOM notification comes before the kill is counted
    oom_notice = "notified"  # notified | polled (no notifier could be opened: the counter is read every round)

    def __init__(self, parent: str, run_id: str):
        self.parent = parent
        self.path = os.path.join(parent, run_id)
        self.limit_bytes: int | None = None
        self.oom_scope: OomScope = "process"

    @property
    def name(self) -> str:
        return f"cgroup-v{self.version}"

    @property
    def kernel_name(self) -> str | None:
        """How the kernel log names this group: its path relative to the hierarchy's mount, of which
        the last two parts are unique enough (oomlab/<run-id>, docker/<id>)."""
        return "/" + "/".join(self.path.rstrip("/").split("/")[-2:])

    @property
    def procs_file(self) -> str:
        return os.path.join(self.path, "cgroup.procs")

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    # --- leaves: a memory cgroup per pool child under the limited group ----------------------
    @property
    def join_file(self) -> str:
        """Where the worker's main process starts: the group itself (v1 allows processes beside
        child groups); v2 overrides this with a leaf of its own."""
        return self.procs_file

    def prepare_leaves(self) -> None:
        """Make the group ready for pool children to make leaves under it (v2: the controller)."""

    def leaf_env(self) -> dict[str, str]:
        """What the probe in each pool child needs to make its own leaf."""
        return {LEAF_PARENT_ENV: self.path, CGROUP_VERSION_ENV: str(self.version)}

    def leaf_dirs(self) -> list[str]:
        """Every child cgroup of the group (the leaves pool children made)."""
        try:
            with os.scandir(self.path) as entries:
                return [entry.path for entry in entries if entry.is_dir(follow_symlinks=False)]
        except OSError:
            return []

    def counted_events_files(self) -> list[str]:
        """The files whose `oom_kill` counters add up to every kill in the group. v1 counts a kill
        only in the victim's own cgroup (its leaf), so the leaves' files are summed too."""
        return [self.file(self.events_file)]

    # --- lifecycle -------------------------------------------------------------------------
    def create(self, limit_bytes: int, oom_scope: OomScope) -> None:
        for _ in range(20):
            try:
                self.prepare_parent()
                os.mkdir(self.path)
                break
            except FileNotFoundError:
                time.sleep(0.01)  # another run removed the empty parent just now: make it again
        else:
            os.mkdir(self.path)
        self.limit_bytes = limit_bytes
        self.oom_scope = oom_scope
        self.apply_limit(limit_bytes, oom_scope)

    def prepare_parent(self) -> None:
        os.makedirs(self.parent, exist_ok=True)

    def apply_limit(self, limit_bytes: int, oom_scope: OomScope) -> None:
        raise NotImplementedError

    def pids(self) -> list[int]:
        """Every process in the group, its leaves included."""
        found = _procs_of(self.procs_file)
        for leaf in self.leaf_dirs():
            found.extend(_procs_of(os.path.join(leaf, "cgroup.procs")))
        return found

    def signal_all(self, signum: int = signal.SIGKILL) -> list[int]:
        """One pass of `signum` to every process in the group; returns the pids signalled."""
        sent = []
        for pid in self.pids():
            try:
                os.kill(pid, signum)
                sent.append(pid)
            except ProcessLookupError:
                pass
        return sent

    def kill_all(self, timeout: float = 5.0) -> bool:
        """SIGKILL every process until the group is empty; True when it emptied in time."""
        deadline = time.monotonic() + timeout
        while self.signal_all():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def remove(self) -> None:
        if not os.path.isdir(self.path):
            return
        self.kill_all()
        for directory in [*self.leaf_dirs(), self.path]:
            _rmdir_when_empty(directory)
        try:
            os.rmdir(self.parent)  # only succeeds when no other run is using it
        except OSError:
            pass

    # --- counters --------------------------------------------------------------------------
    def usage_bytes(self) -> int | None:
        return read_int(self.file(self.usage_file))

    def peak_bytes(self) -> int | None:
        return read_int(self.file(self.peak_file))

    def memory_kinds(self) -> dict[str, int] | None:
        """The group's usage split into anon / file / shmem (memory.stat)."""
        return memory_kinds(read_text(self.file("memory.stat")), self.version)

    def oom_counters(self) -> dict[str, int]:
        return keyed_counters(read_text(self.file(self.events_file)))

    def oom_kill_count(self) -> int:
        return sum(keyed_counters(read_text(path)).get("oom_kill", 0) for path in self.counted_events_files())

    def open_oom_notifier(self) -> OomNotifier:
        raise NotImplementedError


def _procs_of(procs_file: str) -> list[int]:
    try:
        fd = os.open(procs_file, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        return [int(pid) for pid in os.read(fd, 1 << 20).split()]
    except OSError:
        return []
    finally:
        os.close(fd)


def _rmdir_when_empty(directory: str) -> None:
    """rmdir a cgroup, waiting while the kernel still tears down its last processes (EBUSY)."""
    for _ in range(100):
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            time.sleep(0.05)


class OomNotifier:
    """A file descriptor that turns readable when the cgroup's OOM state changes."""

    def __init__(self, fd: int, keep_open: tuple[int, ...] = ()):
        self.fd = fd
        self._keep_open = keep_open

    def fileno(self) -> int:
        return self.fd

    def drain(self) -> None:
        try:
            os.read(self.fd, 4096)
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        for fd in (self.fd, *self._keep_open):
            try:
                os.close(fd)
            except OSError:
                pass
