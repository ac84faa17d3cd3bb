"""Process exits through pidfds: readable the moment a process (any in the group, not only our
children) has exited, with no polling.

Where no pidfd can be opened for a live process (EMFILE under a NOFILE limit: systemd's default soft
limit is 1024), it is watched by its /proc entry instead, read at each `gone()` call: zombie, gone, or
another process under its pid by then is its exit; with no fd left even for that read, os.kill(pid, 0)
says once it is reaped. A pidfd is tried again at each call, and takes over once one can be opened."""

from __future__ import annotations

import errno
import os

from oomlab.observe.detectors.readable import readable

_NO_FD = (errno.EMFILE, errno.ENFILE, errno.ENOMEM)


class ExitWatcher:
    def __init__(self) -> None:
        self._fds: dict[int, int] = {}  # fd -> pid
        self._polled: dict[int, bytes | None] = {}  # pid -> its start time, watched without a pidfd
        self.unavailable = not hasattr(os, "pidfd_open")
        self.no_pidfd: str | None = None  # why a pidfd could not be opened, when that ever happened

    def watch(self, pid: int) -> bool:
        """True while `pid` is watched (through a pidfd, else polled); False when it is gone already."""
        if self.unavailable:
            return False
        try:
            fd = os.pidfd_open(pid)
        except OSError as exc:
            if exc.errno not in _NO_FD:
                return False  # already gone
            self.no_pidfd = exc.strerror or str(exc)
            self._polled[pid] = _start_time(pid)
            return True
        self._fds[fd] = pid
        return True

    def fds(self) -> list[int]:
        return list(self._fds)

    def has_exited(self, pid: int) -> bool:
        """Whether a watched process has exited (its pidfd readable), without taking its exit: a
        pid is never confused with a process that took it after."""
        for fd, watched in self._fds.items():
            if watched == pid:
                return bool(readable([fd], 0))
        if pid in self._polled:  # watched without a pidfd: a zombie, or its pid taken, has exited too
            return _exited(pid, self._polled[pid])
        return not os.path.exists(f"/proc/{pid}")  # not watched (no pidfds here)

    @property
    def polled(self) -> bool:
        """Some process is watched without a pidfd: the caller must call gone() every so often."""
        return bool(self._polled)

    def exited(self, fd: int) -> int | None:
        pid = self._fds.pop(fd, None)
        if pid is not None:
            os.close(fd)
        return pid

    def gone(self) -> list[int]:
        """The processes watched without a pidfd that have exited since the last call."""
        ended = []
        for pid, start in list(self._polled.items()):
            if _exited(pid, start):
                ended.append(pid)
                del self._polled[pid]
                continue
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                continue
            del self._polled[pid]
            self._fds[fd] = pid
        return ended

    def close(self) -> None:
        for fd in list(self._fds):
            self.exited(fd)
        self._polled.clear()


def _stat(pid: int) -> list[bytes] | None:
    """/proc/PID/stat's fields after the command name; None when the process is gone."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        data = stat.read()
    return data[data.rfind(b")") + 2 :].split()


def _start_time(pid: int) -> bytes | None:
    try:
        fields = _stat(pid)
    except OSError:
        return None
    return fields[19] if fields and len(fields) > 19 else None


def _exited(pid: int, start: bytes | None) -> bool:
    try:
        fields = _stat(pid)
    except (FileNotFoundError, ProcessLookupError):
        return True
    except OSError:  # no fd left for the read: gone only once its parent reaped it
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        return False
    if not fields or fields[0] in (b"Z", b"X", b"x"):
        return True
    return start is not None and len(fields) > 19 and fields[19] != start  # its pid taken by another
