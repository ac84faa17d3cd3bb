"""Plan mode streams: `oomlab run noop --tasks N` (no load flag, the command users reach for first) at
growing N, against bare Celery running the same N no-op tasks on the same worker shape (bench.overhead's
bare round: the whole batch sent, every result awaited), alternated size by size.

For each size: oomlab's own peak RSS (its process's VmHWM after the run ended, the report
included; the worker's and timeline.png's drawing child are other processes, not counted), run.json's
size, each checkpoint's CPU time (p50 / p99, from the record), and the throughput between the first and
the last task done, as bare Celery's is counted. `--tasks N` sets the largest size (a million takes
about 40 minutes for oomlab alone on a 2-core machine, as long again for bare Celery)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from oomlab.config.sizes import format_size
from oomlab.record.schema import load_run

from bench import report
from bench.overhead import timed_round

SIZES = [2_000, 20_000]
TASKS: int | None = None  # --tasks N: the largest size in place of the last
PEAK_TARGET_BYTES = 64 << 20
FLAT_RATIO = 1.2  # the largest size's peak against the smallest's
RUN_JSON_TARGET_BYTES = 1 << 20
CHECKPOINT_P99_TARGET_S = 0.020
TIME_RATIO = 1.1  # oomlab's time from first to last task done against bare Celery's

# `oomlab ARGS` in a Python of its own, then the process's own peak RSS: VmHWM, not ru_maxrss, which
# Linux carries over from the parent across fork and exec (a benchmark or pytest that has grown would be
# measured in its place)
PEAK_RSS = (
    "import sys\n"
    "from oomlab.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "hwm = [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:')]\n"
    "print('OOMLAB_VMHWM_KIB', hwm[0], file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def plan_run(results_dir: str, tasks: int) -> dict:
    """One real plan-mode run through the CLI: its figures, or RuntimeError with its last words."""
    argv = [sys.executable, "-c", PEAK_RSS, "run", "noop", "--tasks", str(tasks), "--results", results_dir]
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=max(600, tasks / 20))
    wall = time.monotonic() - started
    peaks = [int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("OOMLAB_VMHWM_KIB")]
    run_dir = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not peaks or not os.path.isdir(run_dir):
        raise RuntimeError(f"oomlab run noop --tasks {tasks} failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    record = load_run(run_dir)
    load = record.load
    if load is None or load.harness is None:
        raise RuntimeError(f"{run_dir}: a plan of {tasks} tasks wrote no load figures")
    return {
        "tasks": tasks,
        "status": record.status,
        "succeeded": load.counts.succeeded,
        "peak_rss_bytes": peaks[0] * 1024,
        "peak_rss_during_run_bytes": load.harness.oomlab_peak_rss_bytes,
        "run_json_bytes": os.path.getsize(os.path.join(run_dir, "run.json")),
        "checkpoint_p50_s": load.harness.checkpoint_seconds.p50,
        "checkpoint_p99_s": load.harness.checkpoint_seconds.p99,
        "checkpoints": load.harness.checkpoint_seconds.n,
        "achieved_per_s": load.achieved_per_s,
        "wall_s": wall,
    }


def measure(results_dir: str, sizes: list[int]) -> dict:
    rows = []
    for tasks in sizes:
        bare = timed_round("bare", tasks)
        oomlab = plan_run(results_dir, tasks)
        rows.append({**oomlab, "bare_achieved_per_s": bare.achieved_per_s, "bare_per_s": bare.per_s})
    return summarize(rows)


def summarize(rows: list[dict]) -> dict:
    """The saved figures: each size's row, with oomlab's time against bare Celery's (first to last task
    done: the larger, the slower oomlab was), and the peak's growth from the smallest size to the largest."""
    for row in rows:
        ours, bare = row["achieved_per_s"], row["bare_achieved_per_s"]
        row["time_ratio"] = bare / ours if ours and bare else None
    first, last = rows[0], rows[-1]
    return {
        "sizes": [row["tasks"] for row in rows],
        "rows": rows,
        "peak_ratio": last["peak_rss_bytes"] / first["peak_rss_bytes"],
        "largest_peak_bytes": max(row["peak_rss_bytes"] for row in rows),
    }


def show(data: dict, out) -> None:
    rows = data["rows"]
    report.table(
        "plan mode: `oomlab run noop --tasks N` against bare Celery, prefork × 2 (tasks/s first to last task done)",
        ["tasks", "oomlab peak RSS", "during run", "run.json", "checkpoint p50 / p99", "oomlab", "bare", "time ×"],
        [
            [
                f"{row['tasks']:,}",
                format_size(row["peak_rss_bytes"]),
                format_size(row["peak_rss_during_run_bytes"]),
                f"{row['run_json_bytes'] / 1024:.0f} KiB",
                f"{report.ms(row['checkpoint_p50_s'])} / {report.ms(row['checkpoint_p99_s'])}",
                f"{row['achieved_per_s'] or 0:.0f}/s",
                f"{row['bare_achieved_per_s']:.0f}/s",
                f"{row['time_ratio']:.2f}" if row["time_ratio"] else "-",
            ]
            for row in rows
        ],
        out,
    )
    largest = data["largest_peak_bytes"]
    report.target(out, f"oomlab's peak ≤ 64 MiB at every size ({format_size(largest)})", largest <= PEAK_TARGET_BYTES)
    report.target(
        out, f"flat in tasks: peak ratio < {FLAT_RATIO} ({data['peak_ratio']:.2f})", data["peak_ratio"] < FLAT_RATIO
    )
    biggest = max(row["run_json_bytes"] for row in rows)
    report.target(out, f"run.json ≤ 1 MiB ({biggest / 1024:.0f} KiB)", biggest <= RUN_JSON_TARGET_BYTES)
    worst = max((row["checkpoint_p99_s"] or 0.0) for row in rows)
    report.target(out, f"checkpoint p99 ≤ 20 ms ({report.ms(worst)})", worst <= CHECKPOINT_P99_TARGET_S)
    ratios = [row["time_ratio"] for row in rows if row["time_ratio"]]
    report.target(
        out,
        f"time within {TIME_RATIO}× of bare Celery ({' / '.join(f'{r:.2f}' for r in ratios) or 'not measured'})",
        bool(ratios) and max(ratios) <= TIME_RATIO,
    )


def main(results_dir: str) -> dict:
    sizes = [*SIZES[:-1], TASKS] if TASKS else SIZES
    data = measure(results_dir, sizes)
    show(data, report.console())
    return data
