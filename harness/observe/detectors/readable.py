"""Waiting for file descriptors to turn readable: select(2) while every fd is numbered below
FD_SETSIZE, else poll(2). select takes no fd numbered 1024 or above (ValueError), and a process that
holds many files (a watcher with a pidfd per pool child, an agent beside a busy metrics port) gets
such numbers for its newest fds. But poll counts in milliseconds, and the agent's counter watch
wakes every millisecond: on poll alone its kills in a container were seen 7 to 200 ms late (on
select, within 4), so poll is kept for the case select cannot take."""

from __future__ import annotations

import math
import select
import time
from collections.abc import Iterable

FD_SETSIZE = 1024  # glibc's: the fds select can take
_ANY = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP | select.POLLNVAL


def readable(fds: Iterable[int], timeout: float) -> list[int]:
    """The fds among `fds` that are readable (or in error: a read then says what happened) within
    `timeout` seconds. poll counts in milliseconds: a wait under one is a check, a sleep and a second
    check, so the callers' sub-millisecond pacing is kept rather than rounded up to a millisecond."""
    fds = list(fds)
    if all(fd < FD_SETSIZE for fd in fds):
        return select.select(fds, [], [], max(0.0, timeout))[0]
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN | select.POLLPRI)
    if 0 < timeout < 0.001:
        ready = _ready(poller, 0)
        if ready:
            return ready
        time.sleep(timeout)
        timeout = 0
    return _ready(poller, math.ceil(timeout * 1000))


def _ready(poller: select.poll, timeout_ms: int) -> list[int]:
    return [fd for fd, events in poller.poll(timeout_ms) if events & _ANY]
