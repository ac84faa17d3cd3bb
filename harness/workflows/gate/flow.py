"""The gate from end to end, shared by `oomlab gate` and the pytest plugin: read the baseline (or
write the first one), pick thresholds (command line, then pyproject.toml, then growth:10%,+2MiB), compare,
and write the Markdown and JUnit reports that were asked for."""

from __future__ import annotations

import os

from oomlab.errors import BadInput
from oomlab.record.load import LoadSection
from oomlab.workflows.gate.baseline import baseline_scenario, load_baseline, save_baseline
from oomlab.workflows.gate.load_checks import check_load
from oomlab.workflows.gate.run_checks import RunFacts, run_problems
from oomlab.workflows.gate.settings import read_gate_settings
from oomlab.workflows.gate.sites import grown_sites
from oomlab.workflows.gate.stats import TaskStats
from oomlab.workflows.gate.thresholds import LoadThreshold, Threshold, parse_threshold
from oomlab.workflows.gate.verdict import RUN, Check, GateResult, compare

# each task's own growth above its start (its tree's where exact), not absolute RSS, which carries the
# pool process's baseline and what ran before in it; a regression must grow by 10 % AND by 2 MiB,
# so a small task's allocator noise does not fail the gate (docs/gate.md)
DEFAULT_THRESHOLDS = ("growth:10%,+2MiB",)


def gate(
    baseline_path: str | None,
    current: dict[str, TaskStats],
    source: str,
    fail: list[str],
    pyproject: str = "pyproject.toml",
    refusal: str | None = None,
    load: LoadSection | None = None,
    facts: RunFacts | None = None,
) -> GateResult:
    """`refusal`: why this run may not become the first baseline (record_is_baseline_worthy), if so.
    `baseline_path` None: only absolute (load) bounds, which need none (BadInput for a memory bound)."""
    ignored: list[str] = []
    default, per_task = read_gate_settings(pyproject, ignored)
    result = _gate(baseline_path, current, source, fail, default, per_task, refusal, load, facts)
    result.notices[:0] = ignored
    return result


def _gate(
    baseline_path: str | None,
    current: dict[str, TaskStats],
    source: str,
    fail: list[str],
    default: list[Threshold | LoadThreshold],
    per_task: dict[str, list[Threshold | LoadThreshold]],
    refusal: str | None,
    load: LoadSection | None,
    facts: RunFacts | None,
) -> GateResult:
    given: list[Threshold | LoadThreshold] = [parse_threshold(text) for text in fail]
    thresholds = given or default or [parse_threshold(text) for text in DEFAULT_THRESHOLDS]
    if baseline_path is None:
        return _without_baseline(thresholds, per_task, source, load, facts)
    exists = os.path.exists(baseline_path)
    problems = run_problems(facts, baseline_scenario(baseline_path) if exists else None) if facts else []
    load_checks = check_load(load, thresholds, per_task)  # load bounds: absolute, no baseline
    if not exists:
        return _first_baseline(baseline_path, current, source, facts, refusal, problems, load_checks)
    baseline, baseline_source = load_baseline(baseline_path)
    if any(problem.threshold == "scenario" for problem in problems):  # same names, other tasks: no row means anything
        result = GateResult(notices=["no task compared: the baseline is of another scenario"])
    else:
        result = compare(baseline, current, thresholds, per_task)
        result.notices += [f"grew: {line}" for line in grown_sites(baseline, current)]
    result.checks.extend(load_checks)
    result.checks[:0] = problems
    result.notices.insert(0, f"baseline {baseline_path} (run {baseline_source}) against run {source}")
    return result


def _without_baseline(
    thresholds: list[Threshold | LoadThreshold],
    per_task: dict[str, list[Threshold | LoadThreshold]],
    source: str,
    load: LoadSection | None,
    facts: RunFacts | None,
) -> GateResult:
    memory = [str(t) for t in thresholds if isinstance(t, Threshold)]
    if memory:
        raise BadInput(
            f"{', '.join(memory)} compares with a baseline: give --baseline PATH, or only absolute load bounds "
            "such as queue_wait.p95<2s"
        )
    skipped = sorted(name for name, ts in per_task.items() if any(isinstance(t, Threshold) for t in ts))
    return GateResult(
        checks=(run_problems(facts) if facts else []) + check_load(load, thresholds, per_task),
        notices=[f"no baseline: run {source} checked against absolute bounds only"]
        + [f"{name}'s memory bounds need a baseline: not checked" for name in skipped],
    )


def _first_baseline(
    path: str,
    current: dict[str, TaskStats],
    source: str,
    facts: RunFacts | None,
    refusal: str | None,
    problems: list[Check],
    load_checks: list[Check],
) -> GateResult:
    """No baseline yet: this run becomes it only when it is worthy and keeps every absolute bound;
    every bound is shown either way."""
    broken = [check for check in load_checks if check.failed]
    if refusal or problems or broken:
        whys = [refusal] if refusal else [check.detail or check.threshold for check in problems]
        whys += [f"it breaks {', '.join(check.threshold for check in broken)}"] if broken else []
        why = "; ".join(filter(None, whys))
        refused = [Check(RUN, "baseline", None, None, True, detail=refusal)] if refusal and not problems else []
        return GateResult(
            checks=problems + refused + load_checks,
            notices=[f"no baseline written to {path}: run {source} cannot be the first: {why}"],
        )
    save_baseline(path, current, source, facts.scenario if facts else None)
    return GateResult(
        checks=load_checks,
        saved=path,
        baseline=current,
        notices=[
            f"no baseline at {path}: this run ({source}) is saved as the baseline; "
            f"the gate passes and compares from the next run on"
        ],
    )
