"""Reading a run's tasks: pandas on tasks.jsonl (`pd.read_json(lines=True)`) against pandas on the
Parquet file `oomlab export --parquet` writes, at OOMLAB_BENCH_TASKS_ROWS tasks (default 100,000),
and oomlab's own reader (RunTasks, each line checked) folding them (TaskDigest).

The tasks are a real load run's (alloc, a closed loop of 2 with over-limit tasks killed: a real mix of
succeeded and killed lines), repeated with fresh random ids and times moved on until the stream holds
the rows asked for: the lines are real, their number is synthesized (and their peaks, sizes and pids
repeat more than a real run's would, which flatters Parquet's compression of those columns). Each pandas read runs in a fresh interpreter (its time
and its peak RSS, the import of pandas not counted), median of ROUNDS."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from oomlab.record.digest import TaskDigest
from oomlab.record.export import write_parquet
from oomlab.record.stream import TASKS_FILE, RunTasks, TaskStream

from bench import report

ROWS = int(os.environ.get("OOMLAB_BENCH_TASKS_ROWS", "100000"))
ROUNDS = 3
SOURCE_TASKS = 100

READ = """
import json, sys, time
import pandas as pd
began = time.perf_counter()
frame = pd.read_json(sys.argv[2], lines=True) if sys.argv[1] == "jsonl" else pd.read_parquet(sys.argv[2])
seconds = time.perf_counter() - began
assert len(frame) == int(sys.argv[3]), len(frame)
hwm = [int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(json.dumps({"seconds": seconds, "peak_rss_bytes": hwm}))  # VmHWM: ru_maxrss carries the parent's over exec
"""


def real_run(results_dir: str) -> str:
    """A real load run's directory (its tasks.jsonl is the lines repeated)."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "oomlab", "run", "alloc", "--param", "hold=0.02", "--in-flight", "2"),
            *("--tasks", str(SOURCE_TASKS), "--results", results_dir),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    run_dir = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not os.path.isfile(os.path.join(run_dir, TASKS_FILE)):
        raise RuntimeError(f"oomlab run alloc failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return run_dir


def repeated(run_dir: str, target_dir: str, rows: int) -> str:
    """A copy of the run whose stream holds `rows` lines: its own lines over and over, each with a
    fresh random id and its times moved on by the run's length per repetition (as a longer run would
    have them), so neither file compresses better than a real one would for those columns."""
    os.makedirs(target_dir)
    shutil.copy(os.path.join(run_dir, "run.json"), target_dir)
    lines = list(RunTasks(run_dir))
    times = [t for line in lines for t in (line.sent_mono, line.finished_mono) if t is not None]
    span = max(times) - min(times)
    stream = TaskStream(target_dir)
    for index in range(rows):
        line, shift = lines[index % len(lines)], (index // len(lines)) * span
        moved = {
            k: v + shift for k in ("sent_mono", "started_mono", "finished_mono") if (v := getattr(line, k)) is not None
        }
        stream.write(dataclasses.replace(line, id=str(uuid.uuid4()), **moved))
    stream.close()
    return target_dir


def pandas_read(kind: str, path: str, rows: int) -> dict:
    figures = []
    for _ in range(ROUNDS):
        done = subprocess.run(
            [sys.executable, "-c", READ, kind, path, str(rows)], capture_output=True, text=True, timeout=600
        )
        if done.returncode != 0:
            raise RuntimeError(f"pandas could not read {path}: {done.stderr.strip()[-300:]}")
        figures.append(json.loads(done.stdout))
    return {
        "seconds": statistics.median(f["seconds"] for f in figures),
        "rounds_s": [round(f["seconds"], 3) for f in figures],
        "peak_rss_bytes": statistics.median(f["peak_rss_bytes"] for f in figures),
        "file_bytes": os.path.getsize(path),
    }


def main(results_dir: str) -> dict:
    out = report.console()
    work = tempfile.mkdtemp(prefix="oomlab-bench-tasks-")
    try:
        source = real_run(results_dir)
        run_dir = repeated(source, os.path.join(work, "run"), ROWS)
        jsonl = os.path.join(run_dir, TASKS_FILE)
        parquet = os.path.join(work, "tasks.parquet")
        began = time.perf_counter()
        write_parquet(RunTasks(run_dir), parquet)
        export_s = time.perf_counter() - began
        began = time.perf_counter()
        digest = TaskDigest.of(RunTasks(run_dir))
        fold_s = time.perf_counter() - began
        assert digest.tasks == ROWS
        reads = {"tasks.jsonl": pandas_read("jsonl", jsonl, ROWS), "Parquet": pandas_read("parquet", parquet, ROWS)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.table(
        f"pandas reading {ROWS:,} tasks (a real load run's {SOURCE_TASKS} lines repeated; median of {ROUNDS} fresh interpreters)",
        ["", "file", "read", "pandas peak RSS", "rounds"],
        [
            [
                name,
                f"{r['file_bytes'] / 2**20:.1f} MiB",
                f"{r['seconds']:.2f} s",
                f"{r['peak_rss_bytes'] / 2**20:.0f} MiB",
                " / ".join(f"{s:.2f}" for s in r["rounds_s"]),
            ]
            for name, r in reads.items()
        ],
        out,
    )
    faster = reads["tasks.jsonl"]["seconds"] / reads["Parquet"]["seconds"]
    smaller = reads["tasks.jsonl"]["file_bytes"] / reads["Parquet"]["file_bytes"]
    out.print(
        f"Parquet: {faster:.1f}x faster to read, {smaller:.1f}x smaller; writing it (`oomlab export --parquet`) took "
        f"{export_s:.1f} s. oomlab's own reader (each line checked) folded the stream in {fold_s:.1f} s "
        f"({fold_s / ROWS * 1e6:.0f} µs per task)."
    )
    return {
        "rows": ROWS,
        "source": f"a real `oomlab run alloc --in-flight 2 --tasks {SOURCE_TASKS}`, its lines repeated with fresh "
        "random ids and times moved on (peaks, args and pids repeat)",
        "reads": reads,
        "export_seconds": round(export_s, 2),
        "fold_seconds": round(fold_s, 2),
        "read_speedup": round(faster, 2),
        "size_ratio": round(smaller, 2),
    }
