"""`--beside RUN_DIR`: one worker's figures set beside a fleet's. The figures' arithmetic on a record
made here (pure logic), and the refusals through the command line (one sentence, exit 2, nothing sent:
no Redis is reached). The comparison on real workers: tests/fleet/test_netns.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from oomlab.cli.fleet_beside import beside_lines
from oomlab.config.options import RunConfig
from oomlab.errors import BadInput
from oomlab.record.fleet import FleetFigures, ReplicaRecord
from oomlab.record.schema import Execution, KillRecord, RunRecord, TaskRecord, write_json_atomic
from oomlab.workflows.fleet.beside import SingleRun, beside, check_against, single_side

MIB = 1 << 20


def _task(tid: str, outcome: str, label: str, end: float | None, peak: int | None = None, exact: bool = True):
    run = Execution(pid=1, started_mono=10.0, started_wall=0.0, start_rss_bytes=None, finished_mono=end)
    run.tree_peak_bytes, run.tree_peak_exact, run.peak_rss_bytes = peak, exact, (peak or 0) + 50 * MIB
    return TaskRecord(tid, "alloc.allocate", label, [], sent_mono=10.0, outcome=outcome, executions=[run])  # type: ignore[arg-type]


def _record(status: str = "complete", scenario: str = "alloc", **config) -> RunRecord:
    record = RunRecord("20261206-000000-alloc-aaaaaa", RunConfig(scenario, "200MiB", 200 * MIB, 1, **config))
    record.status = status  # type: ignore[assignment]
    record.group.limit_bytes, record.summary.group_peak_bytes = 200 * MIB, 200 * MIB
    record.tasks = [
        _task("a", "succeeded", "fits 32 MiB", 11.0, 34 * MIB),
        _task("b", "succeeded", "fits 64 MiB", 12.0, 68 * MIB, exact=False),  # VmHWM then: 118 MiB
        _task("c", "killed", "over-limit 250 MiB", None),
        _task("d", "stuck", "fits 16 MiB", None),  # not final: in no figure but `sent`
    ]
    record.kills = [KillRecord(2, "child", "c", "alloc.allocate", "SIGKILL", "oom", 11.5, "kmsg")]
    return record


def test_one_workers_figures_are_the_fleets_definitions():
    side = single_side(_record())
    assert (side.sent, side.final, side.killed) == (4, 3, 1)
    assert (side.duration_s, side.throughput_per_s) == (2.0, 1.5)  # 3 final over first send to last end
    assert (side.latency_p50_s, side.latency_p95_s, side.latency_max_s) == (1.5, 2.0, 2.0)  # the kill ends c
    assert side.peak_bytes == 118 * MIB and side.group_peak_bytes == 200 * MIB


def test_the_ratios_are_fleet_over_one_and_per_replica():
    fleet = FleetFigures(sent=4, succeeded=2, killed=1, duration_s=0.5, throughput_per_s=6.0, latency_p50_s=0.75)
    fleet.latency_p95_s, fleet.peak_bytes, fleet.group_peak_bytes = 1.0, 118 * MIB, 150 * MIB
    b = beside(SingleRun("/r/x", _record()), fleet, replicas=3)
    assert (b.ratios.throughput, b.ratios.throughput_per_replica) == (4.0, 1.333)
    assert (b.ratios.latency_p50, b.ratios.latency_p95, b.ratios.peak, b.ratios.group_peak) == (0.5, 0.5, 1.0, 0.75)
    assert (b.run_id, b.run_dir, b.limit_bytes, b.concurrency, b.replicas) == (
        _record().run_id,
        "/r/x",
        200 * MIB,
        1,
        3,
    )
    assert beside(SingleRun("/r/x", _record()), FleetFigures(), 3).ratios.throughput is None  # nothing measured


def test_tasks_final_without_times_are_said_beside_the_figures():
    """A task known final from the result backend only (its replica's events never came) is in no
    figure: the footer says how many of the fleet's tasks the figures cover."""
    fleet = FleetFigures(sent=4, succeeded=3, killed=1, timed=3, duration_s=0.5, throughput_per_s=6.0)
    footer = beside_lines(beside(SingleRun("/r/x", _record()), fleet, replicas=3))[-1]
    assert "3 of 4 tasks final on one worker, 4 of 4 in the fleet, 1 of them known final" in footer
    assert "cover the other 3" in footer
    fleet.timed = 4
    assert "without times" not in beside_lines(beside(SingleRun("/r/x", _record()), fleet, replicas=3))[-1]


def test_a_replica_of_another_limit_or_pool_or_another_plan_is_refused():
    single = SingleRun("/r/x", _record())
    labels = ["fits 32 MiB", "fits 64 MiB", "over-limit 250 MiB", "fits 16 MiB"]
    same = ReplicaRecord("r1", limit_bytes=200 * MIB, concurrency=1)
    check_against(single, [same], list(reversed(labels)))  # the same tasks, in any order
    with pytest.raises(BadInput, match=r"r2 256.0 MiB -c 1: not the same worker"):
        check_against(single, [same, ReplicaRecord("r2", limit_bytes=256 * MIB, concurrency=1)], labels)
    with pytest.raises(BadInput, match=r"r3 200.0 MiB -c 2"):
        check_against(single, [ReplicaRecord("r3", limit_bytes=200 * MIB, concurrency=2)], labels)
    with pytest.raises(BadInput, match="4 tasks of another plan than this run's 3"):
        check_against(single, [same], labels[:3])


def _fleet_cli(run_dir: str, *extra: str) -> subprocess.CompletedProcess:
    argv = [
        sys.executable, "-m", "oomlab", "run", "alloc", "--fleet", "redis://127.0.0.1:1/1/s", "--replicas", "3",
        "--broker", "redis://127.0.0.1:1/0", "--beside", run_dir, *extra,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=os.path.dirname(run_dir))


@pytest.mark.parametrize(
    ("record", "extra", "says"),
    [
        (_record(status="interrupted"), (), "that run ended interrupted"),
        (_record(scenario="leak"), (), "not the same work: scenario 'leak' (this run: 'alloc')"),
        (_record(tasks=12), (), "tasks 12 (this run: 8)"),  # the scenario's default when --tasks is left out
        (_record(), ("--param", "hold=1"), "not the same work: params"),
        (_record(), ("--rate", "5/s", "--duration", "2s"), "compares a replay of the plan"),
        (None, (), "holds no run.json"),
        (_record(tasks=8), (), "cannot reach the events stream"),  # the same work: accepted, then no Redis (exit 5)
    ],
)
def test_a_single_run_that_is_not_the_same_work_is_refused_before_anything_is_sent(tmp_path, record, extra, says):
    run_dir = tmp_path / "single"
    run_dir.mkdir()
    if record is not None:
        params = {"sizes": [32, 64, 48, 16, 64, 24, 48], "over": 1.25, "every": 8, "hold": 0.3}
        data = record.to_json()
        data["config"]["params"] = params  # alloc's defaults, as a run records them
        write_json_atomic(str(run_dir / "run.json"), data)
    done = _fleet_cli(str(run_dir), *extra)
    assert done.returncode == (5 if "reach" in says else 2) and "Traceback" not in done.stderr, done.stderr
    assert says in done.stderr.strip().splitlines()[-1], done.stderr


def test_beside_without_a_fleet_is_refused(tmp_path):
    argv = [sys.executable, "-m", "oomlab", "run", "alloc", "--beside", str(tmp_path), "--results", str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "give it with --fleet" in done.stderr.strip().splitlines()[-1], done.stderr
