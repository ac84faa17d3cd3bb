"""Short real load runs: a worker at a given limit, pool and concurrency, sent tasks on an open-loop
schedule, and what its run.json `load` section measured (tasks finished per second, queue wait, OOM
kills). Sent above what one replica can do, the achieved rate is the replica's sustainable rate."""

from __future__ import annotations

from dataclasses import dataclass, replace

from harness.config import RunConfig
from harness.errors import WorkerStartFailed
from harness.load.shapes import LoadShape
from harness.report.hooks import standard_hooks
from harness.runner import Run
from harness.scenario import Scenario

MIB = 1024 * 1024
OVERDRIVE = 1.5  # a saturating run sends this many times the estimated capacity


@dataclass
class LoadResult:
    run_dir: str
    status: str
    asked_per_s: float
    seconds: float
    achieved_per_s: float | None
    queue_wait_p95_s: float | None
    kills: int
    recycled: int
    group_peak_bytes: int | None


def limit_text(limit_bytes: int) -> str:
    return f"{limit_bytes // MIB}MiB" if limit_bytes % MIB == 0 else str(limit_bytes)


def at_setting(config: RunConfig, limit_bytes: int, pool: str, concurrency: int) -> RunConfig:
    return replace(config, memory=limit_text(limit_bytes), memory_bytes=limit_bytes, pool=pool, concurrency=concurrency)


def load_run(scenario: Scenario, config: RunConfig, rate: float, seconds: float) -> LoadResult:
    shape = LoadShape("rate", seconds, rate=rate, seed=0)
    run = Run(scenario, replace(config, tasks=None, load=shape.as_dict()), hooks=standard_hooks())
    try:
        run.execute()
    except WorkerStartFailed:
        pass  # the record says why: a worker that cannot start under the limit carries nothing
    section = run.record.load or {}
    wait = (section.get("latency") or {}).get("queue_wait") or {}
    return LoadResult(
        run.run_dir,
        run.record.status,
        rate,
        seconds,
        section.get("achieved_per_s") if run.record.status != "worker_start_failed" else None,
        wait.get("p95"),
        len(run.record.kills),
        run.record.summary.children_recycled,
        run.record.summary.group_peak_bytes,
    )


def saturating_rate(concurrency: int, run_time_s: float, ceiling: float) -> float:
    """Above what `concurrency` slots finish per second at the measured run time, and at most
    `ceiling` (a replica that carries the whole target needs no more)."""
    estimate = concurrency / max(run_time_s, 1e-3)
    return round(min(ceiling, OVERDRIVE * estimate), 3)
