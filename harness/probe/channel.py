"""The probe's one way out: each event is one JSON line written with a single write(2), either
appended to the file OOMLAB_PROBE_PATH names (the lab's runs) or sent as one datagram on the socket
OOMLAB_PROBE_FD names (`oomlab agent`, which holds the other end). Its own module so the recorder,
the profiler and the agent's hooks all write through it.

The socket is non-blocking: when the agent is slow or gone, an event is dropped, never waited for,
so the worker runs on whatever happens to its watcher."""

from __future__ import annotations

import os

from oomlab.probe.events import encode

PATH_ENV = "OOMLAB_PROBE_PATH"
FD_ENV = "OOMLAB_PROBE_FD"
_fd: int | None = None
dropped = 0  # events the agent's socket did not take (full or closed)


def _channel() -> int | None:
    global _fd
    if _fd is None:
        if os.environ.get(FD_ENV, "").isdigit():
            _fd = int(os.environ[FD_ENV])
        elif os.environ.get(PATH_ENV):
            _fd = os.open(os.environ[PATH_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    return _fd


def descriptor() -> int | None:
    """The descriptor events go out on, if any."""
    return _channel()


def emit(event: str, **fields) -> None:
    global dropped
    fd = _channel()
    if fd is None:
        return
    try:
        os.write(fd, encode(event, **fields))
    except OSError:
        if not os.environ.get(FD_ENV):
            raise  # the file channel: a failed write is the run's to know about
        dropped += 1  # the agent's socket: full (EAGAIN) or its reader gone; the worker goes on
