"""A baseline: each task name's peak statistics from one run, saved as JSON to compare later runs with."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict

from harness.errors import BadInput
from harness.gate.run_checks import RunFacts, run_facts
from harness.gate.stats import TaskStats, task_stats
from harness.record import load_run, write_json_atomic

BASELINE_SCHEMA = "oomlab.baseline/1"


def stats_from_run(run_dir: str) -> tuple[dict[str, TaskStats], str]:
    try:
        record = load_run(run_dir)
    except FileNotFoundError:
        raise BadInput(f"{run_dir} holds no run.json: give the run directory `oomlab run` printed") from None
    except ValueError:
        raise BadInput(f"{run_dir}/run.json is not readable JSON") from None
    return task_stats(record), record.get("run_id", os.path.basename(run_dir))


def run_facts_from(run_dir: str) -> RunFacts:
    try:
        return run_facts(load_run(run_dir))
    except (FileNotFoundError, ValueError):
        raise BadInput(f"{run_dir} holds no readable run.json: give the run directory `oomlab run` printed") from None


def baseline_scenario(path: str) -> str | None:
    try:
        with open(path) as handle:
            return json.load(handle).get("scenario")
    except (OSError, ValueError):
        return None


def save_baseline(path: str, stats: dict[str, TaskStats], source: str, scenario: str | None = None) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_json_atomic(
        path,
        {
            "schema": BASELINE_SCHEMA,
            "source_run": source,
            "scenario": scenario,
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
