"""How far this host's wall clock is from a Redis server's (`TIME`): the one clock every replica of a
fleet and its controller can all read. Best of a few round trips; the offset is taken at the middle of
the shortest one, so it is known to within half that round trip."""

from __future__ import annotations

import time
from typing import Any

TRIES = 5


def redis_clock_offset(client: Any) -> tuple[float, float]:
    """(offset, round trip) in seconds: Redis's clock minus this host's, at the shortest of TRIES trips."""
    best: tuple[float, float] | None = None
    for _ in range(TRIES):
        before = time.time()
        seconds, micros = client.time()
        after = time.time()
        trip = after - before
        offset = seconds + micros / 1e6 - (before + after) / 2
        if best is None or trip < best[1]:
            best = (offset, trip)
    assert best is not None
    return best
