"""Plan cost: real recommendations for one task mix under growing limits (so the concurrency range
grows), counting the trial runs the doubling-and-bisection search needed and their time, against
a full grid that tries every concurrency from 1 up to the boundary (its time estimated from the
mean trial time measured in the same run)."""

from __future__ import annotations

import statistics
import time

from oomlab.config.options import RunOptions, resolve
from oomlab.config.scenario import load_scenario
from oomlab.workflows.recommend.flow import recommend

from bench import report

LIMITS = ("256MiB", "512MiB", "1GiB")
PARAMS = {"over": "0", "sizes": "24", "hold": "1"}


def one(limit: str, results_dir: str) -> dict:
    scenario = load_scenario("alloc")
    config = resolve(scenario, RunOptions(memory=limit, concurrency=1, tasks=4, params=PARAMS, results_dir=results_dir))
    durations: list[float] = []
    clock = [time.monotonic()]

    def timed(_trial) -> None:
        now = time.monotonic()
        durations.append(now - clock[0])
        clock[0] = now

    started = time.monotonic()
    result = recommend(
        scenario, config, 0.10, 2, on_measured=lambda _p: clock.__setitem__(0, time.monotonic()), on_trial=timed
    )
    total = time.monotonic() - started
    proof = result.proof
    assert proof is not None, "the benchmark proves every plan"
    boundary = proof.smallest_failing or max(t.concurrency for t in proof.trials)
    mean_trial = statistics.mean(durations)
    return {
        "limit": limit,
        "recommended": result.plan.concurrency,
        "boundary": proof.smallest_failing,
        "trials": len(proof.trials),
        "seconds": total,
        "mean_trial_seconds": mean_trial,
        "grid_trials": boundary,
        "grid_seconds_estimated": boundary * mean_trial + (total - sum(durations)),
    }


def main(results_dir: str) -> dict:
    out = report.console()
    figures = [one(limit, results_dir) for limit in LIMITS]
    rows = [
        [
            f["limit"],
            f["recommended"],
            f["boundary"] or "-",
            f["trials"],
            f"{f['seconds']:.0f} s",
            f["grid_trials"],
            f"~{f['grid_seconds_estimated']:.0f} s",
        ]
        for f in figures
    ]
    report.table(
        "a validated recommendation as the range grows (alloc, 24 MiB tasks held 1 s)",
        ["limit", "recommended", "boundary", "search trials", "search time", "grid trials", "grid time"],
        rows,
        out,
    )
    logarithmic = all(f["trials"] <= 2 + 2 * max(1, f["grid_trials"]).bit_length() for f in figures)
    report.target(out, "trial runs grow logarithmically with the range (at most 2 + 2·log2(boundary))", logarithmic)
    return {"figures": figures}
