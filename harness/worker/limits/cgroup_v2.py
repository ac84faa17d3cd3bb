"""cgroup v2: memory.max, memory.swap.max, memory.oom.group, and inotify on memory.events."""

from __future__ import annotations

import ctypes
import os

from oomlab.worker.limits.base import CgroupBackend, OomNotifier, OomScope, read_text, write_text

MAIN_LEAF = "leaf-main"  # the worker's main process (and the threads/solo pools' tasks) on v2
_IN_MODIFY = 0x00000002
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000


def enable_memory_controller(cgroup_dir: str) -> None:
    """Let children of `cgroup_dir` use the memory controller (no-op when already on)."""
    control = os.path.join(cgroup_dir, "cgroup.subtree_control")
    if "memory" not in (read_text(control) or "").split():
        write_text(control, "+memory")


class CgroupV2(CgroupBackend):
    version = 2
    limit_file = "memory.max"
    usage_file = "memory.current"
    peak_file = "memory.peak"
    events_file = "memory.events"

    def prepare_parent(self) -> None:
        os.makedirs(self.parent, exist_ok=True)
        enable_memory_controller(os.path.dirname(self.parent))
        enable_memory_controller(self.parent)

    @property
    def join_file(self) -> str:
        # "no internal processes": a group with child groups holds no processes of its own
        return os.path.join(self.path, MAIN_LEAF, "cgroup.procs")

    def prepare_leaves(self) -> None:
        enable_memory_controller(self.path)
        os.makedirs(os.path.join(self.path, MAIN_LEAF), exist_ok=True)

    def apply_limit(self, limit_bytes: int, oom_scope: OomScope) -> None:
        write_text(self.file("memory.max"), str(limit_bytes))
        if os.path.exists(self.file("memory.swap.max")):
            write_text(self.file("memory.swap.max"), "0")
        write_text(self.file("memory.oom.group"), "1" if oom_scope == "group" else "0")

    def kill_all(self, timeout: float = 5.0) -> bool:
        if os.path.exists(self.file("cgroup.kill")):
            try:
                write_text(self.file("cgroup.kill"), "1")
            except OSError:
                pass
        return super().kill_all(timeout)

    def open_oom_notifier(self) -> OomNotifier:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        watch = libc.inotify_add_watch(fd, self.file("memory.events").encode(), _IN_MODIFY)
        if watch < 0:
            os.close(fd)
            raise OSError(ctypes.get_errno(), "inotify_add_watch on memory.events failed")
        return OomNotifier(fd)
