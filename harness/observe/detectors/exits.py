"""Process exits through pidfds: readable the moment a process (any in the group, not only our
children) has exited, with no polling."""

from __future__ import annotations

import os
import select


class ExitWatcher:
    def __init__(self) -> None:
        self._fds: dict[int, int] = {}  # fd -> pid
        self.unavailable = not hasattr(os, "pidfd_open")

    def watch(self, pid: int) -> bool:
        if self.unavailable:
            return False
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return False  # already gone
        self._fds[fd] = pid
        return True

    def fds(self) -> list[int]:
        return list(self._fds)

    def has_exited(self, pid: int) -> bool:
        """Whether a watched process has exited (its pidfd readable), without taking its exit: a
        pid is never confused with a process that took it after."""
        for fd, watched in self._fds.items():
            if watched == pid:
                return bool(select.select([fd], [], [], 0)[0])
        return not os.path.exists(f"/proc/{pid}")  # not watched (no pidfds here)

    def exited(self, fd: int) -> int | None:
        pid = self._fds.pop(fd, None)
        if pid is not None:
            os.close(fd)
        return pid

    def close(self) -> None:
        for fd in list(self._fds):
            self.exited(fd)
