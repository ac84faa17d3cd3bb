"""A worker main process oomlab did not start: watched through a pidfd (no pid reuse mistaken for
it), never signalled; its exit code belongs to its parent, so it stays unknown here."""

from __future__ import annotations

import os
import select


class AttachedWorker:
    returncode: int | None = None  # never known: the exit code is its parent's to read

    def __init__(self, pid: int):
        self.pid = pid
        self._pidfd: int | None
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._pidfd = None  # already gone

    def poll(self) -> int | None:
        """None while it runs; -1 once it is gone (the code itself is its parent's to read)."""
        if self._pidfd is None:
            return -1
        poller = select.poll()  # not select(): a pidfd numbered 1024 or above is refused there
        poller.register(self._pidfd, select.POLLIN)
        return -1 if poller.poll(0) else None

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
