"""The memory group's OOM kill counter, read often only while a kill can come: where the agent has
neither an OOM notifier nor the kernel log (an unprivileged container on cgroup v1), it is the only
sign of a kill before the victim's exit, which waits for the kernel to tear the victim's memory down.

A kill comes only at the group's limit, so the usage is read again after the time the group would
take to fill what is left below the limit at GROWTH bytes a second (at most USAGE_MAX_S, at least
USAGE_MIN_S apart), and the counter every COUNTER_S only while the usage, as last read, is above
HOT of the limit. A group that grows faster than GROWTH can be killed before the counter is read: the
kill is then seen at the next usage read (the victim's memory is still charged while it is torn
down) or at the victim's exit, whichever comes first.
Every file is kept open and re-read with pread from offset 0, so each read is one system call. On
cgroup v1 a kill is counted only in the victim's own cgroup: a pool child's leaf's file is opened
when the counter is first read hot, and the leaves looked for again every LEAVES_S while it stays so."""

from __future__ import annotations

import os
import time

from oomlab.worker.limits.base import CgroupBackend, keyed_counters

GROWTH = 4 << 30  # bytes a second: twice a Python loop touching fresh pages here (2.2 GiB/s)
USAGE_MAX_S = 0.1
USAGE_MIN_S = 0.004
COUNTER_S = 0.001
HOT = 0.8
LEAVES_S = 0.1
LIMIT_S = 5.0  # the limit is read again this often (a container's limit can be changed while it runs)
_UNLIMITED = 1 << 60


class CounterWatch:
    def __init__(self, group: CgroupBackend, usage_fd: int, limit: int):
        self.group = group
        self.usage_fd = usage_fd
        self.limit = limit
        self.counter_fds: dict[str, int] = {}
        self.reads = 0  # preads made, for the costs
        self._next_usage = 0.0
        self._next_counter: float | None = None  # None: cold, the counter is not read
        self._hot_until = 0.0
        self._next_leaves = 0.0
        self._next_limit = time.monotonic() + LIMIT_S

    @classmethod
    def open(cls, group: CgroupBackend) -> CounterWatch | None:
        """None when the group has no limit (no kill of its own can come) or its usage is unreadable."""
        limit = _limit(group)
        if limit is None:
            return None
        try:
            usage_fd = os.open(group.file(group.usage_file), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        return cls(group, usage_fd, limit)

    def timeout(self, now: float) -> float:
        """Seconds until the next read is due."""
        due = self._next_usage if self._next_counter is None else min(self._next_usage, self._next_counter)
        return max(0.0, due - now)

    def poll(self, now: float) -> int | None:
        """The reads that are due; the group's kill count when the counter was read, else None."""
        if now >= self._next_usage:
            self._read_usage(now)
        if self._next_counter is None or now < self._next_counter:
            return None
        if now >= self._hot_until:
            self._next_counter = None  # cooled down: the counter rests until the usage climbs again
            return None
        self._next_counter = now + COUNTER_S
        if now >= self._next_leaves:
            self._open_counters()
            self._next_leaves = now + LEAVES_S
        return self.count()

    def count(self) -> int:
        total = 0
        for path, fd in list(self.counter_fds.items()):
            text = self._pread(fd)
            if text is None:  # a leaf removed under it
                os.close(self.counter_fds.pop(path))
                continue
            total += keyed_counters(text).get("oom_kill", 0)
        return total

    def _read_usage(self, now: float) -> None:
        if now >= self._next_limit:
            self.limit = _limit(self.group) or self.limit
            self._next_limit = now + LIMIT_S
        text = self._pread(self.usage_fd)
        usage = int(text) if text and text.strip().isdigit() else 0
        self._next_usage = now + min(USAGE_MAX_S, max(USAGE_MIN_S, (self.limit - usage) / GROWTH))
        if usage >= HOT * self.limit:
            self._hot_until = self._next_usage + COUNTER_S  # until the usage is read again
            if self._next_counter is None:
                self._next_counter = now
                self._next_leaves = now

    def _open_counters(self) -> None:
        wanted = set(self.group.counted_events_files())
        for path in [p for p in self.counter_fds if p not in wanted]:
            os.close(self.counter_fds.pop(path))
        for path in wanted - set(self.counter_fds):
            try:
                self.counter_fds[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                pass

    def _pread(self, fd: int) -> str | None:
        self.reads += 1
        try:
            return os.pread(fd, 4096, 0).decode()
        except OSError:
            return None

    def close(self) -> None:
        for fd in (self.usage_fd, *self.counter_fds.values()):
            os.close(fd)
        self.counter_fds.clear()


def _limit(group: CgroupBackend) -> int | None:
    try:
        with open(group.file(group.limit_file)) as handle:
            text = handle.read().strip()
    except OSError:
        return None
    if not text.isdigit() or int(text) >= _UNLIMITED:
        return None
    return int(text)
