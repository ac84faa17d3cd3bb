"""Load runs: the harness's own cost per task as tasks grow, throughput at saturation
against bare Celery (bench.saturation), and the send schedule's accuracy at 500/s.

Every figure comes from a real `oomlab run noop ...` (its run.json's `load.harness` section: oomlab's
own peak RSS and CPU, each checkpoint's time), or from the same worker without oomlab (bench.overhead's
bare round). Sizes: OOMLAB_BENCH_LOAD_SIZES (default 1000,10000,100000); a size not run is projected
from the measured ones and said to be."""

from __future__ import annotations

import os

from oomlab.record.load import HarnessCost, Schedule
from oomlab.record.typed_json import to_json

from bench import report, saturation
from bench.noop_run import oomlab_run

SIZES = tuple(int(n) for n in os.environ.get("OOMLAB_BENCH_LOAD_SIZES", "1000,10000,100000").split(","))
PROJECT_TO = 1_000_000
IN_FLIGHT = 40
ROUNDS = 3
SCHEDULE_RATE = 500
SCHEDULE_SECONDS = 10


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
    sat = saturation.measure(results_dir, rounds=ROUNDS)
    saturation.show(sat, out)
    return {"schedule": schedule, "harness_cost": figures, "projection": projected, "saturation": sat}
