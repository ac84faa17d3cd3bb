"""Load runs: the harness's own cost per task as tasks grow, throughput at saturation
against bare Celery, and the send schedule's accuracy at 500/s.

Every figure comes from a real `oomlab run noop ...` (its run.json's `load.harness` section: oomlab's
own peak RSS and CPU, each checkpoint's time), or from the same worker without oomlab (bench.overhead's
bare round). Sizes: OOMLAB_BENCH_LOAD_SIZES (default 1000,10000,100000); a size not run is projected
from the measured ones and said to be."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from oomlab.record.load import HarnessCost, LoadSection, Schedule
from oomlab.record.schema import load_run
from oomlab.record.typed_json import to_json

from bench import report
from bench.overhead import timed_round

SIZES = tuple(int(n) for n in os.environ.get("OOMLAB_BENCH_LOAD_SIZES", "1000,10000,100000").split(","))
PROJECT_TO = 1_000_000
IN_FLIGHT = 40
ROUNDS = 3
SCHEDULE_RATE = 500
SCHEDULE_SECONDS = 10


def oomlab_run(results_dir: str, *args: str, timeout: float = 3600) -> tuple[LoadSection, str, float]:
    """(run.json's load section, run directory, wall seconds) of one real run through the CLI."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "oomlab", "run", "noop", "--results", results_dir, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    elapsed = time.monotonic() - started
    run_dir = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not os.path.isdir(run_dir):
        raise RuntimeError(f"oomlab run {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    load = load_run(run_dir).load
    if load is None:
        raise RuntimeError(f"oomlab run {' '.join(args)} wrote no load section in {run_dir}")
    return load, run_dir, elapsed


def harness_cost(results_dir: str) -> list[dict]:
    figures = []
    for tasks in SIZES:
        load, run_dir, elapsed = oomlab_run(results_dir, "--in-flight", str(IN_FLIGHT), "--tasks", str(tasks))
        cost = load.harness or HarnessCost()
        figures.append(
            {
                "tasks": tasks,
                "seconds": round(elapsed, 1),
                "achieved_per_s": load.achieved_per_s,
                "oomlab_peak_rss_bytes": cost.oomlab_peak_rss_bytes,
                "oomlab_cpu_seconds": cost.oomlab_cpu_seconds,
                "checkpoint_p50_s": cost.checkpoint_seconds.p50,
                "checkpoint_max_s": cost.checkpoint_seconds.max,
                "run_json_bytes": os.path.getsize(os.path.join(run_dir, "run.json")),
                "tasks_jsonl_bytes": os.path.getsize(os.path.join(run_dir, "tasks.jsonl")),
            }
        )
    return figures


def projection(figures: list[dict]) -> dict | None:
    """A million tasks from the two largest sizes measured: the marginal CPU and RSS per task."""
    if len(figures) < 2 or figures[-1]["tasks"] >= PROJECT_TO:
        return None
    a, b = figures[-2], figures[-1]
    more = b["tasks"] - a["tasks"]
    cpu_per_task = (b["oomlab_cpu_seconds"] - a["oomlab_cpu_seconds"]) / more
    rss_per_task = (b["oomlab_peak_rss_bytes"] - a["oomlab_peak_rss_bytes"]) / more
    remaining = PROJECT_TO - b["tasks"]
    return {
        "tasks": PROJECT_TO,
        "basis": f"projected from the runs of {a['tasks']} and {b['tasks']} tasks (marginal cost per task)",
        "cpu_per_task_s": cpu_per_task,
        "rss_per_task_bytes": rss_per_task,
        "oomlab_peak_rss_bytes_projected": round(b["oomlab_peak_rss_bytes"] + max(0.0, rss_per_task) * remaining),
        "oomlab_cpu_seconds_projected": round(b["oomlab_cpu_seconds"] + cpu_per_task * remaining, 1),
        "tasks_jsonl_bytes_projected": round(b["tasks_jsonl_bytes"] / b["tasks"] * PROJECT_TO),
    }


SATURATION_TASKS = 4000
BARE = "bare Celery, whole batch"
BATCH = "oomlab, whole batch (--in-flight N)"
CLOSED = "oomlab --in-flight 200"


def saturation(results_dir: str, tasks: int = SATURATION_TASKS) -> dict:
    """Alternating rounds of the same no-op tasks on a prefork × 2 worker with its own embedded Redis:
    bare Celery (bench.overhead: the whole batch sent, then every result awaited), oomlab given the
    same whole batch, and oomlab keeping a closed loop of 200 (a steady load run). Each rate is
    completions per second between the first and the last task done, as a load run counts; beside
    it the sending side's CPU per task (the bare client's, oomlab's since its first send), which
    takes its share of the same 2 cores."""
    rates: dict[str, list[float]] = {BARE: [], BATCH: [], CLOSED: []}
    cpu: dict[str, list[float]] = {name: [] for name in rates}
    for _ in range(ROUNDS):
        bare = timed_round("bare", tasks)
        rates[BARE].append(bare.achieved_per_s)
        cpu[BARE].append(bare.client_cpu_s / tasks)
        for name, in_flight in ((BATCH, tasks), (CLOSED, 200)):
            load, _, _ = oomlab_run(results_dir, "--in-flight", str(in_flight), "--tasks", str(tasks))
            rates[name].append(load.achieved_per_s or 0.0)
            cpu[name].append((load.harness or HarnessCost()).load_cpu_seconds / tasks)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    gaps = {name: 100 * (medians[BARE] - medians[name]) / medians[BARE] for name in (BATCH, CLOSED)}
    return {
        "tasks": tasks,
        "rates": rates,
        "medians": medians,
        "cpu_per_task_s": {name: statistics.median(values) for name, values in cpu.items()},
        "gap_percent": gaps,
    }


def schedule_accuracy(results_dir: str) -> dict:
    load, _, _ = oomlab_run(
        results_dir, "--rate", f"{SCHEDULE_RATE}/s", "--duration", f"{SCHEDULE_SECONDS}s", "--timeout", "2"
    )
    schedule = load.schedule or Schedule()
    return {
        "asked_per_s": schedule.asked_per_s,
        "offered_per_s": schedule.offered_per_s,
        "error_percent": schedule.offered_error_percent,
        "lateness_s": to_json(schedule.lateness_s),
    }


def main(results_dir: str) -> dict:
    out = report.console()
    schedule = schedule_accuracy(results_dir)
    lateness = schedule["lateness_s"]
    report.table(
        f"send schedule at {SCHEDULE_RATE}/s for {SCHEDULE_SECONDS} s (open loop; the worker falls behind, the sender must not)",
        ["asked", "offered", "error", "late p50", "late p99", "late max"],
        [
            [
                f"{schedule['asked_per_s']:.0f}/s",
                f"{schedule['offered_per_s']:.1f}/s",
                report.pct(schedule["error_percent"]),
                report.ms(lateness["p50"]),
                report.ms(lateness["p99"]),
                report.ms(lateness["max"]),
            ]
        ],
        out,
    )
    report.target(out, "offered within 1 % of --rate at 500/s", abs(schedule["error_percent"]) <= 1)
    figures = harness_cost(results_dir)
    projected = projection(figures)
    rows = [
        [
            f"{f['tasks']:,}",
            f"{f['seconds']:.0f} s",
            f"{f['achieved_per_s']:.0f}/s",
            f"{f['oomlab_peak_rss_bytes'] / 2**20:.1f} MiB",
            f"{f['oomlab_cpu_seconds']:.1f} s",
            report.ms(f["checkpoint_p50_s"]),
            report.ms(f["checkpoint_max_s"]),
            f"{f['run_json_bytes'] / 1024:.0f} KiB",
        ]
        for f in figures
    ]
    if projected:
        rows.append(
            [
                f"{PROJECT_TO:,} (projected)",
                "-",
                "-",
                f"{projected['oomlab_peak_rss_bytes_projected'] / 2**20:.1f} MiB",
                f"{projected['oomlab_cpu_seconds_projected']:.0f} s",
                "-",
                "-",
                "-",
            ]
        )
    report.table(
        f"oomlab's own cost against tasks sent (no-op tasks, closed loop of {IN_FLIGHT}, prefork × 2)",
        ["tasks", "wall", "achieved", "oomlab peak RSS", "oomlab CPU", "checkpoint p50", "checkpoint max", "run.json"],
        rows,
        out,
    )
    largest_rss = (projected or {}).get("oomlab_peak_rss_bytes_projected", figures[-1]["oomlab_peak_rss_bytes"])
    report.target(out, "oomlab's RSS under 200 MB at a million tasks (projected when not run)", largest_rss < 200e6)
    # the two largest sizes: the smallest run lasts seconds, so all its checkpoints fall in the warm-up
    flat = len(figures) > 1 and figures[-1]["checkpoint_p50_s"] <= 2 * figures[-2]["checkpoint_p50_s"]
    report.target(
        out,
        f"checkpoint time flat: p50 within 2x from {figures[-2]['tasks'] if len(figures) > 1 else '-'} "
        f"to {figures[-1]['tasks']} tasks",
        flat,
    )
    sat = saturation(results_dir)
    report.table(
        f"achieved throughput at saturation, {sat['tasks']:,} no-op tasks, prefork × 2 "
        f"(median of {ROUNDS} alternating rounds; completions per second, first to last)",
        ["", "median", "rounds", "vs bare", "sender CPU per task"],
        [
            [
                name,
                f"{sat['medians'][name]:.0f}/s",
                " / ".join(f"{v:.0f}" for v in values),
                f"{-sat['gap_percent'][name]:+.1f} %" if name in sat["gap_percent"] else "-",
                report.ms(sat["cpu_per_task_s"][name]),
            ]
            for name, values in sat["rates"].items()
        ],
        out,
    )
    report.target(
        out,
        f"oomlab within 5 % of bare Celery, same batch ({sat['gap_percent'][BATCH]:.1f} %)",
        sat["gap_percent"][BATCH] <= 5,
    )
    return {"schedule": schedule, "harness_cost": figures, "projection": projected, "saturation": sat}
