"""SIGINT/SIGTERM during a run: an exception in the main thread, so every `finally` runs."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

from harness.errors import Interrupted


@contextmanager
def signals_raise_interrupted() -> Iterator[None]:
    def handler(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
