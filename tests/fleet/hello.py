"""A replica's hello (worker_start) as an agent sends it, for the fleet's tests: one place for its
fields, so a field the hello gains is added here once."""

from __future__ import annotations

from oomlab.record import fleet


def hello(name: str, **more) -> dict:
    """`name`'s hello: agent pid 100, hostname celery@<name>, 200 MiB, one process, clock in step; `more`
    overrides or adds fields."""
    return {
        "ev": fleet.WORKER_START,
        "replica": name,
        "wall": 1000.0,
        "pid": 7,
        "agent_pid": 100,
        "hostname": f"celery@{name}",
        "limit_bytes": 200 << 20,
        "concurrency": 1,
        "clock_offset_s": 0.0,
        "clock_round_trip_s": 0.001,
        **more,
    }
