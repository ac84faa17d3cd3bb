"""What the gate reads from one run, or from the runs of one session (a pytest session under `pytest
-n` has one worker run per xdist worker, each its own record, and the gate judges all their tasks at
once): task statistics, load figures and run facts, every task read once through RunTasks."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from oomlab.record.load import LoadSection
from oomlab.record.stream import RunTasks
from oomlab.workflows.gate.baseline import read_run_record
from oomlab.workflows.gate.load_checks import load_of
from oomlab.workflows.gate.run_checks import RunFacts, run_facts
from oomlab.workflows.gate.stats import TaskStats, task_stats
from oomlab.workflows.gate.worthiness import record_is_baseline_worthy


@dataclass(frozen=True)
class GatedRuns:
    stats: dict[str, TaskStats]
    source: str  # the run id, or the ids joined with "+"
    load: LoadSection  # the run's own, or made from the task records (oomlab.run.load.from_tasks)
    facts: RunFacts
    refusal: str | None  # why these runs may not become a baseline (None: they may)


def merge_facts(facts: list[RunFacts]) -> RunFacts:
    """One run's facts for several: the first status that is not complete, kills and tasks summed."""
    failing = next((f for f in facts if f.status != "complete"), facts[0])
    return RunFacts(
        scenario=facts[0].scenario,
        status=failing.status,
        message=failing.message,
        unattributed_kills=sum(f.unattributed_kills for f in facts),
        never_started=sum(f.never_started for f in facts),
        malformed_lines=sum(f.malformed_lines for f in facts),
        malformed=next((f.malformed for f in facts if f.malformed), None),
        failed=sum(f.failed for f in facts),
    )


def gated_runs(run_dirs: list[str]) -> GatedRuns:
    """Task statistics, load figures and run facts over every run directory given (at least one)."""
    records = [read_run_record(run_dir) for run_dir in run_dirs]
    readers = [RunTasks(run_dir, record) for run_dir, record in zip(run_dirs, records, strict=True)]
    refusal = next(filter(None, map(record_is_baseline_worthy, records)), None)
    if len(records) == 1:
        record, tasks = records[0], readers[0]
        stats = task_stats(record, tasks)
        load = load_of(record, tasks)  # a load run's own section; a plan run's from its records
        return GatedRuns(stats, record.run_id, load, run_facts(record, tasks.check), refusal)
    from oomlab.run.load.from_tasks import load_from_tasks

    merged = replace(
        records[0],
        tasks=[task for record in records for task in record.tasks],
        kills=[kill for record in records for kill in record.kills],
    )
    started = min(record.started_mono for record in records)  # CLOCK_MONOTONIC: one clock per machine
    return GatedRuns(
        stats=task_stats(merged, itertools.chain.from_iterable(readers)),
        source="+".join(record.run_id for record in records),
        load=load_from_tasks(itertools.chain.from_iterable(readers), started, len(merged.kills)),
        facts=merge_facts([run_facts(record, reader.check) for record, reader in zip(records, readers, strict=True)]),
        refusal=refusal,
    )
