"""The probe's line format, in one dependency-free place: the worker writes it, the harness reads it.

Each line is one JSON object: `ev` (one of the names below), `pid`, `t` (CLOCK_MONOTONIC), `wall`
(time.time()), and the event's own fields (e.g. `id`, `name`, `rss`, `hwm`).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

WORKER_READY = "worker_ready"  # the main process: Celery's worker_ready signal, with its RSS
CHILD_INIT = "child_init"  # a pool child finished its init (with its USS)
CHILD_SHUTDOWN = "child_shutdown"  # a pool child is exiting (with its exit code; 155 = recycled)
PRERUN = "prerun"  # a task starts in this process (VmHWM reset just before)
POSTRUN = "postrun"  # a task ended in this process (its exact peak)
SENT = "sent"  # a task sent from inside the worker (a chord's parts, a callback, a retry): its ids


def encode(event: str, **fields: Any) -> bytes:
    """One line, written with a single write(2) so that it is whole in the file or absent."""
    record = {"ev": event, "pid": os.getpid(), "t": time.monotonic(), "wall": time.time(), **fields}
    return (json.dumps(record, default=repr) + "\n").encode()


def decode(line: str | bytes) -> dict[str, Any] | None:
    """A line read back; None for a torn or foreign line (a reader never fails on one)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("ev"), str) else None
