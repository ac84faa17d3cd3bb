"""`oomlab run SCENARIO --fleet ... --beside RUN_DIR`: one worker's figures set beside the fleet's.

The single worker's figures come from another run (`oomlab run SCENARIO --memory M --concurrency C`),
never re-measured here: the fleet's record names that run, when and where it ran. So that the two
sides are the same work, the run is refused unless it ran the same scenario, variant, parameters and
plan, complete, with the limit and pool every replica reports; both sides are computed by the fleet's
own definitions (FleetFigures) from each record's per-task times."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from oomlab.config.scenario import Scenario
from oomlab.config.sizes import format_size
from oomlab.errors import BadInput
from oomlab.record.exact_counts import nearest_rank
from oomlab.record.fleet import BesideSingle, FleetFigures, Ratios, ReplicaRecord, SideFigures
from oomlab.record.printable import printable_field
from oomlab.record.redact import mask_settings
from oomlab.record.schema import RunRecord, TaskRecord, load_run

FINAL = ("succeeded", "failed", "killed")


@dataclass
class SingleRun:
    """The single-worker run given with --beside: where it is, and its record (checked on reading)."""

    run_dir: str
    record: RunRecord


def read_single(
    run_dir: str, scenario: Scenario, variant: str | None, params: dict[str, str], tasks: int | None
) -> SingleRun:
    """The single-worker run, refused (BadInput, nothing sent) unless it is a complete replay of
    this scenario's plan with the same variant, parameters and task count as this fleet run asks."""
    record = load_run(run_dir)
    config, given = record.config, f"--beside {printable_field(run_dir)}"
    _check_plausible(record, given)
    if record.status != "complete":
        raise BadInput(
            f"{given}: that run ended {record.status}, so its figures are not a whole run's; give a complete one"
        )
    if config.load or config.min_tasks:
        raise BadInput(f"{given}: that run was a load run; --beside compares a replay of the plan (no --rate)")
    want = {
        "scenario": scenario.name,
        "variant": scenario.variant(variant).name,
        "params": _plain(mask_settings(scenario.resolve_params(params))),  # as the record keeps them
        "tasks": tasks if tasks is not None else scenario.defaults_for(scenario.variant(variant)).get("tasks"),
        "pool": "prefork",
    }
    have = {
        "scenario": config.scenario,
        "variant": config.variant,
        "params": _plain(config.params),
        "tasks": config.tasks,
        "pool": config.pool,
    }
    differ = [
        f"{key} {printable_field(repr(have[key]))[:300]} (this run: {printable_field(repr(want[key]))[:300]})"
        for key in want
        if have[key] != want[key]
    ]
    if differ:
        raise BadInput(f"{given}: that run is not the same work: {'; '.join(differ)}; run one that is")
    return SingleRun(run_dir=os.path.abspath(run_dir), record=record)


WALL_MAX = 2**34  # seconds since the epoch: the year 2514, far past any run's start


def _check_plausible(record: RunRecord, given: str) -> None:
    """Figures a run of oomlab's could have written (BadInput otherwise, before anything is sent): a
    start on the calendar, sizes and times that are not negative."""
    if not 0 <= record.started_wall < WALL_MAX:
        raise BadInput(f"{given}: its start time {record.started_wall!r} is not plausible")
    sizes = [record.summary.group_peak_bytes, record.config.memory_bytes]
    for task in record.tasks:
        sizes += [t for run in task.executions for t in (run.tree_peak_bytes, run.peak_rss_bytes)]
        if task.sent_mono is not None and task.sent_mono < 0:
            raise BadInput(f"{given}: a task's send time {task.sent_mono!r} is not plausible")
    if any(size is not None and size < 0 for size in sizes):
        raise BadInput(f"{given}: a negative memory figure is not plausible")


def check_against(single: SingleRun, ready: Sequence[ReplicaRecord], labels: Sequence[str]) -> None:
    """Refused before anything is sent: a replica whose limit or pool differs from the single worker's,
    or a plan of other tasks than the ones it ran."""
    record = single.record
    limit, pool = record.group.limit_bytes, record.config.concurrency
    other = [r for r in ready if r.limit_bytes != limit or r.concurrency != pool]
    if other:
        theirs = ", ".join(
            f"{printable_field(r.name)} {format_size(r.limit_bytes)} -c {r.concurrency}"
            for r in sorted(other, key=lambda r: r.name)
        )
        raise BadInput(
            f"--beside: the single worker ran with {format_size(limit)} and -c {pool}, but {theirs}: not the same "
            f"worker; run it with the replicas' limit and pool (nothing was sent)"
        )
    ran = sorted(t.label for t in record.tasks if t.sent_by == "run")
    if ran != sorted(labels):
        raise BadInput(
            f"--beside: the single worker ran {len(ran)} tasks of another plan than this run's {len(labels)}: not "
            f"the same tasks (nothing was sent)"
        )


def beside(single: SingleRun, fleet: FleetFigures, replicas: int) -> BesideSingle:
    """The comparison as the fleet's record keeps it."""
    record = single.record
    one, many = single_side(record), fleet_side(fleet)
    return BesideSingle(
        run_id=record.run_id,
        run_dir=single.run_dir,
        started_wall=round(record.started_wall, 3),
        hostname=record.environment.hostname,
        placement=record.group.placement,
        limit_bytes=record.group.limit_bytes,
        concurrency=record.config.concurrency,
        replicas=replicas,
        single=one,
        fleet=many,
        ratios=Ratios(
            throughput=_ratio(many.throughput_per_s, one.throughput_per_s),
            throughput_per_replica=_ratio(many.throughput_per_s, one.throughput_per_s, replicas),
            latency_p50=_ratio(many.latency_p50_s, one.latency_p50_s),
            latency_p95=_ratio(many.latency_p95_s, one.latency_p95_s),
            peak=_ratio(many.peak_bytes, one.peak_bytes),
            group_peak=_ratio(many.group_peak_bytes, one.group_peak_bytes),
        ),
    )


def fleet_side(f: FleetFigures) -> SideFigures:
    return SideFigures(
        sent=f.sent,
        final=f.succeeded + f.failed + f.killed,
        timed=f.timed,
        killed=f.killed,
        duration_s=f.duration_s or None,
        throughput_per_s=f.throughput_per_s,
        latency_p50_s=f.latency_p50_s,
        latency_p95_s=f.latency_p95_s,
        latency_max_s=f.latency_max_s,
        peak_bytes=f.peak_bytes,
        group_peak_bytes=f.group_peak_bytes,
    )


def single_side(record: RunRecord) -> SideFigures:
    """The single worker's figures from its tasks' times (monotonic, one host): a task ends at its last
    execution's end, a killed one at the kernel's kill; its peak is its leaf's exact tree peak, else
    VmHWM, as a replica's agent reports it."""
    kills: dict[str, float] = {}
    for kill in record.kills:
        if kill.task_id:
            kills[kill.task_id] = min(kills.get(kill.task_id, kill.kernel_time_mono), kill.kernel_time_mono)
    side = SideFigures(sent=len(record.tasks), group_peak_bytes=record.summary.group_peak_bytes)
    ends, latencies, peaks = [], [], []
    for task in record.tasks:
        end = _end(task, kills)
        if task.outcome not in FINAL or end is None:
            continue
        side.final += 1
        side.timed += 1
        side.killed += task.outcome == "killed"
        ends.append(end)
        latencies.append(round(max(0.0, end - task.sent_mono), 6))
        if task.outcome == "succeeded" and (peak := _peak(task)) is not None:
            peaks.append(peak)
    if ends:
        side.duration_s = round(max(ends) - min(t.sent_mono for t in record.tasks), 6)
        if side.duration_s > 0:
            side.throughput_per_s = round(len(ends) / side.duration_s, 3)
        latencies.sort()
        side.latency_p50_s, side.latency_p95_s = nearest_rank(latencies, 0.5), nearest_rank(latencies, 0.95)
        side.latency_max_s = latencies[-1]
    side.peak_bytes = max(peaks) if peaks else None
    return side


def _end(task: TaskRecord, kills: dict[str, float]) -> float | None:
    if task.outcome == "killed":
        return kills.get(task.id)
    return task.executions[-1].finished_mono if task.executions else None


def _peak(task: TaskRecord) -> int | None:
    if not task.executions:
        return None
    run = task.executions[-1]
    return run.tree_peak_bytes if run.tree_peak_exact else run.peak_rss_bytes


def _ratio(fleet: float | None, single: float | None, replicas: int = 1) -> float | None:
    if fleet is None or not single:
        return None
    return round(fleet / single / replicas, 3)


def _plain(value: Any) -> Any:
    """Parameters as JSON has them (a tuple default and a list read back compare equal)."""
    return json.loads(json.dumps(value, default=str))
