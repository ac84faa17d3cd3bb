"""A memory cgroup oomlab did not make: the group of a worker started by someone else (a Compose
service, a container, a process on this host), reached through that worker's own view of it.

The worker says where it sees its group (`/sys/fs/cgroup` in a container); oomlab reaches the same
directory as /proc/PID/root/..., which works from another container when both share the host's
pid namespace. A directory fd keeps the group reachable after that process exits, and oomlab only
reads: it neither limits, kills nor removes the group.
"""

from __future__ import annotations

import os

from oomlab.errors import NoPermission
from oomlab.worker.limits.base import CgroupBackend, OomNotifier, read_int
from oomlab.worker.limits.cgroup_v1 import CgroupV1
from oomlab.worker.limits.cgroup_v2 import CgroupV2

_UNLIMITED_V1 = 1 << 60  # v1 shows "no limit" as a number near 2**63


class _Attached:
    """Mixed into a version's backend: reads like it, never changes the group."""

    kernel_path: str | None = None  # the group's path as the kernel log prints it, when known
    _dir_fd: int  # the group's directory, held open: it stays reachable after the worker exits
    oom_notice: str

    @property
    def kernel_name(self) -> str | None:
        return self.kernel_path

    def create(self, limit_bytes, oom_scope) -> None:
        raise NotImplementedError("an attached group is not oomlab's to create")

    def kill_all(self, timeout: float = 5.0) -> bool:
        return True  # not oomlab's processes

    def remove(self) -> None:
        os.close(self._dir_fd)

    def open_oom_notifier(self) -> OomNotifier:
        try:
            return super().open_oom_notifier()  # type: ignore[misc]  # a mixin: the version's backend follows it
        except OSError:  # v1 registers through cgroup.event_control, read-only in a container's view
            self.oom_notice = "polled"
            return OomNotifier(os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC))  # never fires


class AttachedV1(_Attached, CgroupV1):
    pass


class AttachedV2(_Attached, CgroupV2):
    pass


def open_attached_group(pid: int, directory: str, kernel_path: str | None) -> CgroupBackend:
    """The memory cgroup `directory` as process `pid` sees it, or NoPermission saying why not."""
    seen_from_here = os.path.join(f"/proc/{pid}/root", directory.lstrip("/"))
    try:
        dir_fd = os.open(seen_from_here, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NoPermission(f"the worker's process {pid} or its memory cgroup {directory} is gone") from None
    except PermissionError:
        raise NoPermission(
            f"cannot reach the worker's memory cgroup through /proc/{pid}/root: "
            f"run oomlab as the worker's user or as root"
        ) from None
    cls = AttachedV2 if os.path.exists(os.path.join(seen_from_here, "memory.current")) else AttachedV1
    group = cls("/proc/self/fd", str(dir_fd))
    group._dir_fd = dir_fd
    group.kernel_path = kernel_path if kernel_path and kernel_path != "/" else None
    limit = read_int(group.file(group.limit_file))
    group.limit_bytes = limit if limit is not None and limit < _UNLIMITED_V1 else None
    if group.usage_bytes() is None:
        os.close(dir_fd)
        raise NoPermission(f"{directory} of process {pid} holds no readable memory counters")
    return group


def attached_limit(pid: int, directory: str, kernel_path: str | None) -> int | None:
    """The memory limit of a worker's group (None: it has none)."""
    group = open_attached_group(pid, directory, kernel_path)
    group.remove()
    return group.limit_bytes
