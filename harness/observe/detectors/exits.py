"""Process exits through pidfds: readable the moment a process (any in the group, not only our
children) has exited, with no polling."""

from __future__ import annotations

import os


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

    def exited(self, fd: int) -> int | None:
        pid = self._fds.pop(fd, None)
        if pid is not None:
            os.close(fd)
        return pid

    def close(self) -> None:
        for fd in list(self._fds):
            self.exited(fd)
