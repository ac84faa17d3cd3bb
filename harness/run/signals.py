"""SIGINT/SIGTERM/SIGHUP during a run: the first one stops the run (an exception in the main thread, so every
`finally` runs); any signal after that, or during cleanup, only hurries cleanup along.

Cleanup that a second Ctrl-C cut short would leave a cgroup, a lease, a socket and a record saying
`running`; so once cleanup has begun no signal raises, and the handlers stay installed until it is
over. `hurried` tells cleanup to skip graceful waits (never steps).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from oomlab.errors import Interrupted

# SIGHUP (a closed terminal or SSH session) stops a run as SIGTERM does: cleanup first, then exit 129
HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class RunSignals:
    """Installed for the whole of a run, cleanup included (`with RunSignals() as signals:`)."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.raising = True
        # a signal that did not stop the run (a second one, or one during cleanup): cleanup should
        # not wait for anything it can do without
        self.hurried = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)
        if self.raising:
            self.raising = False  # one exception per run: a second signal must not unwind cleanup
            raise Interrupted(signum)
        self.hurried = True

    @contextmanager
    def cleaning_up(self) -> Iterator[None]:
        """No signal raises inside: cleanup runs every step, faster when a signal asks it to."""
        self.raising = False
        yield

    def __enter__(self) -> RunSignals:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in HANDLED}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
