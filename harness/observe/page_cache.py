"""Dropping the page cache of the files the worker writes for oomlab (the probe's records, its log)
once oomlab has read them.

The worker writes them, so their cache is charged to the worker's memory cgroup: a million-task load
run writes ~0.8 GB of them, and the group filled to its limit with oomlab's own cache, which the
kernel then had to reclaim inside the worker's allocations. Dirty pages are not dropped until they
are written back; each release covers the whole range read so far again, so they go on a later one."""

from __future__ import annotations

import os

STEP_BYTES = 4 << 20  # release once this much more has been read: one call per few seconds of a busy run


class ReadCache:
    """One file's release point."""

    def __init__(self, step_bytes: int = STEP_BYTES):
        self.step = step_bytes
        self.released_to = 0

    def release(self, fd: int, read_to: int) -> bool:
        """Drop the cached pages of bytes [0, read_to) of `fd`'s file once `step` more were read."""
        if read_to - self.released_to < self.step:
            return False
        try:
            os.posix_fadvise(fd, 0, read_to, os.POSIX_FADV_DONTNEED)
        except OSError:
            return False
        self.released_to = read_to
        return True
