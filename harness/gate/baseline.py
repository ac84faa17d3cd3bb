"""A baseline: each task name's peak statistics from one run, saved as JSON to compare later runs with."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict

from harness.errors import BadInput
from harness.gate.stats import TaskStats, task_stats
from harness.record import load_run, write_json_atomic

BASELINE_SCHEMA = "oomlab.baseline/1"


def stats_from_run(run_dir: str) -> tuple[dict[str, TaskStats], str]:
    record = load_run(run_dir)
    return task_stats(record), record.run_id


def save_baseline(path: str, stats: dict[str, TaskStats], source: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_json_atomic(
        path,
        {
            "schema": BASELINE_SCHEMA,
            "source_run": source,
            "saved_wall": time.time(),
            "tasks": {name: asdict(s) for name, s in stats.items()},
        },
    )


def load_baseline(path: str) -> tuple[dict[str, TaskStats], str]:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except ValueError:
        raise BadInput(f"baseline {path} is not readable JSON") from None
    if data.get("schema") != BASELINE_SCHEMA:
        raise BadInput(
            f"{path} is not an oomlab baseline (schema {data.get('schema')!r}); make one with `oomlab baseline save`"
        )
    return {name: TaskStats(**values) for name, values in data["tasks"].items()}, data.get("source_run", "?")
