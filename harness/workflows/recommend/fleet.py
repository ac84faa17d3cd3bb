"""The fleet for a traffic target: from each candidate's measured per-replica throughput, how many
replicas carry the rate with headroom and the queue wait asked for, what they cost in memory, and
the cheapest safe choice. Pure arithmetic on measured figures, so every row can be checked by hand."""

from __future__ import annotations

import math
from dataclasses import dataclass

from oomlab.workflows.recommend.queueing import NEVER, queue_wait_quantile

MAX_REPLICAS = 1000  # a queue-wait target no fleet below this can meet is reported as unmet


@dataclass
class Candidate:
    """One (limit, pool, concurrency) measured by a short load run above what one replica can do."""

    limit_bytes: int
    pool: str
    concurrency: int  # 0: no safe setting under this limit (then `note` says why)
    per_replica_per_s: float | None  # load.achieved_per_s of the run; None: not measured
    measured_queue_wait_p95_s: float | None = None  # saturated: how long tasks waited in that run
    measured_s: float = 0.0  # seconds of sending in the run
    kills: int = 0
    run_dir: str = ""
    note: str = ""
    safe_concurrency: int = 0  # what the memory model allows, before any --max-concurrency cap
    measured_per_s: float | None = (
        None  # achieved in the run; per_replica_per_s is projected when others held the cores
    )
    service_per_s: float | None = (
        None  # what its slots and cores finish when busy (the queue model's); None: per replica
    )
    slot_bytes: int = 0  # the memory one slot costs in the plan (prefork: a child at its worst; else a task's growth)
    cpu_per_task_s: float | None = None  # CPU seconds per task, every thread of the worker counted
    cores_usable: int = 0  # prefork: a core per child up to the machine's; one process: one (the GIL)
    cpu_bound: bool = False  # at the rate its slots allow, its usable cores would be at least 80 % busy
    contention: str = ""  # set when the figure was projected: what the rest of the machine took


@dataclass
class FleetRow:
    candidate: Candidate
    replicas: int
    total_bytes: int
    headroom: float  # spare share of the fleet's measured throughput at the target rate
    expected_queue_wait_p95_s: float | None  # Erlang C with the measured rate (a model); None: unbounded
    safe: bool
    why: str = ""


def replicas_for(rate: float, per_replica: float, headroom: float) -> int:
    """ceil(rate x (1 + headroom) / per-replica throughput): the arithmetic the tests check."""
    return max(1, math.ceil(rate * (1 + headroom) / per_replica - 1e-9))


def fleet_row(candidate: Candidate, rate: float, headroom: float, queue_wait_p95: float | None) -> FleetRow:
    per = candidate.per_replica_per_s
    if candidate.concurrency < 1 or not per or candidate.kills:
        why = candidate.note or (
            f"{candidate.kills} OOM kill(s) in its load run" if candidate.kills else "no throughput measured"
        )
        return FleetRow(candidate, 0, 0, 0.0, None, False, why)
    replicas = replicas_for(rate, per, headroom)
    wait = _wait(candidate, replicas, rate)
    while queue_wait_p95 is not None and wait > queue_wait_p95 and replicas < MAX_REPLICAS:
        replicas += 1  # more replicas until the modelled wait meets the target
        wait = _wait(candidate, replicas, rate)
    safe = queue_wait_p95 is None or wait <= queue_wait_p95
    return FleetRow(
        candidate,
        replicas,
        replicas * candidate.limit_bytes,
        1 - rate / (replicas * per),
        None if wait == NEVER else wait,
        safe,
        "" if safe else f"the queue wait stays above {queue_wait_p95:g} s up to {MAX_REPLICAS} replicas",
    )


def _wait(candidate: Candidate, replicas: int, rate: float) -> float:
    per = candidate.service_per_s or candidate.per_replica_per_s or 0.0
    return queue_wait_quantile(candidate.concurrency, per, rate / replicas)


def fleet_table(
    candidates: list[Candidate], rate: float, headroom: float, queue_wait_p95: float | None
) -> list[FleetRow]:
    """Every candidate's row, safe ones first, cheapest in total memory first; on a tie fewer replicas,
    then the more throughput to spare."""
    rows = [fleet_row(c, rate, headroom, queue_wait_p95) for c in candidates]
    return sorted(rows, key=lambda r: (not r.safe, r.total_bytes, r.replicas, -r.headroom, r.candidate.pool))


def cheapest(rows: list[FleetRow]) -> FleetRow | None:
    return next((row for row in rows if row.safe), None)
