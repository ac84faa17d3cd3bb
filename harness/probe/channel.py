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
_socket = False  # _fd is the agent's socket (a failed send is dropped, not raised)
dropped = 0  # events the agent's socket did not take (full or closed)


def claim_socket() -> bool:
    """Take the agent's socket, once, in the worker's main process, before any task runs: made
    close-on-exec and its number removed from os.environ, so a program a task starts neither holds it
    nor learns of it (it could send the agent forged events). Pool children, forked without exec,
    keep it. Whether there is one."""
    global _fd, _socket
    if _socket:
        return True
    number = os.environ.pop(FD_ENV, "")
    if not number.isdigit():
        return False
    try:
        os.set_inheritable(int(number), False)
    except OSError:
        return False  # not open here (a program started with the variable but not the socket)
    _fd, _socket = int(number), True
    return True


def _channel() -> int | None:
    global _fd
    if _fd is None and os.environ.get(PATH_ENV):
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
        if not _socket:
            raise  # the file channel: a failed write is the run's to know about
        dropped += 1  # the agent's socket: full (EAGAIN) or its reader gone; the worker goes on
