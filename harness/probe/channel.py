"""The probe's one way out: each event is one JSON line appended with a single write(2) to the file
OOMLAB_PROBE_PATH names. Its own module so the recorder and the profiler both write through it."""

from __future__ import annotations

import os

from oomlab.probe.events import encode

PATH_ENV = "OOMLAB_PROBE_PATH"
_fd: int | None = None


def _channel() -> int | None:
    global _fd
    if _fd is None and os.environ.get(PATH_ENV):
        _fd = os.open(os.environ[PATH_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    return _fd


def emit(event: str, **fields) -> None:
    fd = _channel()
    if fd is None:
        return
    os.write(fd, encode(event, **fields))
