"""A baseline: each task name's peak statistics from one run, saved as JSON to compare later runs with."""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import asdict
from typing import Any

from oomlab.errors import BadInput
from oomlab.record.reading import MAX_RECORD_BYTES, parse_json, read_json, read_regular
from oomlab.record.schema import RunRecord, load_run, write_json_atomic
from oomlab.record.status import remove_quietly
from oomlab.workflows.gate.stats import TaskStats

BASELINE_SCHEMA = "oomlab.baseline/1"


def read_run_record(run_dir: str) -> RunRecord:
    """A run directory's record (BadInput, one sentence, for a file given instead of a directory)."""
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise BadInput(f"{run_dir} is a file, not a run directory: give the directory `oomlab run` printed")
    return load_run(run_dir)


def refuse_overwrite(path: str, force: bool) -> None:
    """A baseline is never written over a run record or a directory, and over another baseline only
    when forced."""
    if os.path.isdir(path):
        raise BadInput(f"{path} is a directory; give a file path for the baseline, e.g. {path}/baseline.json")
    if os.path.basename(path) == "run.json" or _is_run_record(path):
        raise BadInput(f"{path} is a run record; a baseline never replaces one (give another path)")
    if os.path.lexists(path) and not force:
        raise BadInput(f"{path} already exists; give --force to replace it, or another path")


def baseline_scenario(path: str) -> str | None:
    """The scenario the baseline was saved from (None: an older baseline, or none)."""
    try:
        data = parse_json(read_regular(path, MAX_RECORD_BYTES))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    scenario = data.get("scenario") if isinstance(data, dict) else None
    return scenario if isinstance(scenario, str) else None


def _is_run_record(path: str) -> bool:
    try:
        data = parse_json(read_regular(path, MAX_RECORD_BYTES))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and str(data.get("schema", "")).startswith("oomlab.run/")


def save_baseline(path: str, stats: dict[str, TaskStats], source: str, scenario: str | None = None) -> None:
    try:
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
    except OSError as exc:
        remove_quietly(f"{path}.tmp")
        raise BadInput(f"cannot write the baseline {path}: {exc.strerror or exc}") from None


def load_baseline(path: str) -> tuple[dict[str, TaskStats], str]:
    if os.path.isdir(path):
        raise BadInput(f"baseline {path} is a directory, not a baseline file")
    data = read_json(path, "baseline")
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema != BASELINE_SCHEMA:
        raise BadInput(f"{path} is not an oomlab baseline (schema {schema!r}); make one with `oomlab baseline save`")
    tasks = data.get("tasks")
    if not isinstance(tasks, dict):
        raise BadInput(f"baseline {path} has no 'tasks' object; make it again with `oomlab baseline save`")
    return {name: _task_stats(path, name, values) for name, values in tasks.items()}, str(data.get("source_run", "?"))


def _task_stats(path: str, name: str, values: Any) -> TaskStats:
    names = [f.name for f in dataclasses.fields(TaskStats)]
    required = [f.name for f in dataclasses.fields(TaskStats) if f.default is dataclasses.MISSING]
    if not isinstance(values, dict) or set(values) - set(names) or set(required) - set(values):
        raise BadInput(f"baseline {path}: task {name!r} does not hold the statistics {', '.join(names)}")
    mappings = ("sites", "kinds")
    if not all(
        _whole(v) or (v is None and k.startswith(("growth", "needs"))) for k, v in values.items() if k not in mappings
    ):
        raise BadInput(f"baseline {path}: task {name!r} has a statistic that is not a whole number of 0 or more")
    for mapping in mappings:
        held = values.get(mapping, {})
        if not isinstance(held, dict) or not all(isinstance(k, str) and _whole(v) for k, v in held.items()):
            raise BadInput(f"baseline {path}: task {name!r} has {mapping} that are not byte counts by name")
    return TaskStats(**values)


def _whole(value: Any) -> bool:
    """A count or a byte figure: whole and never negative (a negative one would read as a change)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
