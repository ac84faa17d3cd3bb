"""What makes a run unfit to gate on, whatever its task peaks: it did not do its work (worker lost,
timed out, interrupted), the kernel killed a process no task can be blamed for, tasks never started,
its task stream has lines that are not tasks (its figures would leave them out), or it ran another
scenario than the baseline's. Such a run fails the gate and never becomes a baseline."""

from __future__ import annotations

from dataclasses import dataclass

from oomlab.record.schema import RunRecord
from oomlab.record.stream import StreamCheck
from oomlab.workflows.gate.verdict import RUN, Check


@dataclass(frozen=True)
class RunFacts:
    scenario: str | None
    status: str
    message: str | None
    unattributed_kills: int
    never_started: int
    malformed_lines: int = 0  # tasks.jsonl lines that are not tasks: the figures leave them out
    malformed: str | None = None  # the first such, in one sentence
    failed: int = 0  # tasks that raised: a baseline of them would gate on an error path


def run_facts(record: RunRecord, stream: StreamCheck | None = None) -> RunFacts:
    """`stream`: what reading the run's tasks.jsonl found (after the tasks were read)."""
    return RunFacts(
        scenario=record.config.scenario,
        status=record.status,
        message=record.message,
        unattributed_kills=sum(1 for k in record.kills if not k.task_id),
        never_started=record.summary.outcomes.get("never_started", 0),
        malformed_lines=stream.malformed if stream else 0,
        malformed=stream.problem() if stream else None,
        failed=record.summary.outcomes.get("failed", 0),
    )


def run_problems(facts: RunFacts, baseline_scenario: str | None = None) -> list[Check]:
    """A failing check per reason the run cannot be gated on (none: it can)."""
    problems = []
    if facts.status != "complete":
        why = f"status {facts.status}" + (f": {facts.message}" if facts.message else "")
        problems.append(Check(RUN, "complete", None, None, True, detail=why))
    if facts.unattributed_kills:
        detail = f"{facts.unattributed_kills} OOM kill(s) of a process running no task"
        problems.append(Check(RUN, "oom", None, facts.unattributed_kills, True, detail=detail))
    if facts.never_started:
        problems.append(
            Check(
                RUN, "started", None, facts.never_started, True, detail=f"{facts.never_started} task(s) never started"
            )
        )
    if facts.malformed_lines:
        detail = facts.malformed or f"{facts.malformed_lines} malformed line(s) in tasks.jsonl"
        problems.append(Check(RUN, "stream", None, facts.malformed_lines, True, detail=detail))
    if baseline_scenario and facts.scenario and baseline_scenario != facts.scenario:
        detail = f"ran {facts.scenario}, the baseline is of {baseline_scenario}"
        problems.append(Check(RUN, "scenario", None, None, True, detail=detail))
    return problems
