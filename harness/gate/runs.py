"""What the gate reads from the runs of one session: a pytest session under `pytest -n` has one
worker run per xdist worker (each its own record), and the gate judges all their tasks at once."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any

from harness.gate.baseline import read_run_record
from harness.gate.load_checks import load_of_run
from harness.gate.run_checks import RunFacts, run_facts
from harness.gate.stats import TaskStats, task_stats
from harness.load.stream import read_stream
from harness.typed_json import to_json


@dataclass(frozen=True)
class GatedRuns:
    stats: dict[str, TaskStats]
    source: str  # the run id, or the ids joined with "+"
    load: dict[str, Any]
    facts: RunFacts


def merge_facts(facts: list[RunFacts]) -> RunFacts:
    """One run's facts for several: the first status that is not complete, kills and tasks summed."""
    failing = next((f for f in facts if f.status != "complete"), facts[0])
    return RunFacts(
        scenario=facts[0].scenario,
        status=failing.status,
        message=failing.message,
        unattributed_kills=sum(f.unattributed_kills for f in facts),
        never_started=sum(f.never_started for f in facts),
    )


def gated_runs(run_dirs: list[str]) -> GatedRuns:
    """Task statistics, load figures and run facts over every run directory given (at least one)."""
    records = [read_run_record(run_dir) for run_dir in run_dirs]
    if len(records) == 1:
        record = records[0]
        stats = task_stats(record, read_stream(run_dirs[0]))
        return GatedRuns(stats, record.run_id, load_of_run(run_dirs[0]), run_facts(record))
    from harness.load.from_tasks import load_from_tasks

    merged = replace(
        records[0],
        tasks=[task for record in records for task in record.tasks],
        kills=[kill for record in records for kill in record.kills],
    )
    streamed = list(itertools.chain.from_iterable(read_stream(run_dir) for run_dir in run_dirs))
    started = min(record.started_mono for record in records)  # CLOCK_MONOTONIC: one clock per machine
    tasks = [*(to_json(task) for task in merged.tasks), *streamed]
    return GatedRuns(
        stats=task_stats(merged, streamed),
        source="+".join(record.run_id for record in records),
        load=load_from_tasks(tasks, started, len(merged.kills)),
        facts=merge_facts([run_facts(record) for record in records]),
    )
