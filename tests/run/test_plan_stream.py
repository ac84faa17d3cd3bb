"""A plan of more tasks than a run holds streams like a load run: real workers, the embedded broker,
the CLI. oomlab's own peak RSS (the controller's VmHWM, measured by the process that runs it, not
from the record) stays flat from 2,000 to 20,000 tasks, run.json keeps aggregates only, every task is
a line of tasks.jsonl, a task killed mid-plan is named in its line and in the record's kills, the chord
a task sends is followed, and a poison message is stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from oomlab.record.stream import RunTasks
from oomlab.run.plan import STREAM_ABOVE

from bench.stream import PEAK_RSS
from tests.conftest import TIME_SCALE, assert_nothing_left, run_dir_from

pytestmark = pytest.mark.integration


def _plan_run(tmp_path, *args: str) -> tuple[dict, str, int]:
    """run.json, the run directory and oomlab's peak RSS in bytes."""
    argv = [sys.executable, "-c", PEAK_RSS, "run", *args, "--results", str(tmp_path / "results")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=560 * TIME_SCALE)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [peak_kib] = [int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("OOMLAB_VMHWM_KIB")]
    run_dir = run_dir_from(proc.stdout)
    assert run_dir is not None, proc.stdout[-2000:]
    with open(os.path.join(run_dir, "run.json")) as handle:
        return json.load(handle), run_dir, peak_kib * 1024


@pytest.mark.timeout(900)
def test_oomlabs_own_memory_is_flat_from_2000_to_20000_plan_tasks(tmp_path):
    """22,000 no-op tasks: under a minute at the ~500 tasks/s a quiet 2-core machine gives; 4 min here
    with the cores shared (load average 5-6, ~100 tasks/s)."""
    small, _, small_peak = _plan_run(tmp_path, "noop", "--tasks", "2000")
    large, run_dir, large_peak = _plan_run(tmp_path, "noop", "--tasks", "20000")
    assert large["summary"]["outcomes"]["succeeded"] == 20_000 and large["status"] == "complete"
    assert large_peak < 1.2 * small_peak, (small_peak, large_peak)
    assert large["tasks"] == [] and os.path.getsize(os.path.join(run_dir, "run.json")) < 2**20
    assert (
        large["config"]["load"]["kind"] == "plan" and large["load"]["by_task"]["noop.run"]["counts"]["sent"] == 20_000
    )
    assert large["config"]["timeout_used"] == 10_000  # grown with the tasks: 1 s per task and pool process
    tasks = RunTasks(run_dir)
    assert sum(1 for line in tasks if line.outcome == "succeeded" and line.peak_is_exact) == 20_000
    assert tasks.check.malformed == 0
    assert small["summary"]["peak_rss_bytes"]["n"] == 2000  # the summary's figures are every task's
    # a plan is sent ahead of the worker by design: its backlog is no finding of a worker falling behind
    assert not any("could not keep up" in finding for finding in large["load"]["findings"])


def test_a_streamed_plan_names_the_task_each_kill_hit(tmp_path):
    """Two over-limit tasks among 1,200 small ones: each kill's task is a `killed` line of tasks.jsonl."""
    tasks = STREAM_ABOVE + 200
    record, run_dir, _ = _plan_run(
        tmp_path, "alloc", "--tasks", str(tasks), "--param", "sizes=1", "--param", "hold=0",
        "--param", "every=600",
    )  # fmt: skip
    lines = {line.id: line for line in RunTasks(run_dir)}
    assert len(lines) == tasks and record["tasks"] == []
    killed = {k["task_id"] for k in record["kills"] if k["role"] == "child"}
    assert len(killed) == 2 and all(lines[task_id].outcome == "killed" for task_id in killed)
    assert {lines[task_id].label for task_id in killed} == {f"over-limit {1.25 * 256:.0f} MiB"}
    assert sum(1 for line in lines.values() if line.outcome == "succeeded") == tasks - 2
    assert_nothing_left(record["run_id"])


CHORD_AMONG_MANY = """
from oomlab import Plan, PlanCalls, TaskCall
from oomlab.scenarios.workflows import app


def plan(ctx):
    def call(index):
        if index == 0:  # a chord of two parts and its callback, sent by the worker
            return TaskCall("workflows.start", (2, 1, 1, 0), label="sends a chord")
        return TaskCall("workflows.part", (1, 0), label="part")

    return Plan(PlanCalls({tasks}, call))
"""


def test_a_streamed_plan_follows_the_work_its_tasks_send(tmp_path):
    """A chord sent by one of 1,010 calls: its parts and callback are lines of tasks.jsonl, linked to it."""
    scenario = tmp_path / "chord_among_many.py"
    scenario.write_text(CHORD_AMONG_MANY.format(tasks=STREAM_ABOVE + 10))
    record, run_dir, _ = _plan_run(tmp_path, str(scenario))
    lines = list(RunTasks(run_dir))
    assert record["tasks"] == [] and record["status"] == "complete"
    [sender] = [line for line in lines if line.name == "workflows.start"]
    started = [line for line in lines if line.sent_by == "worker"]
    assert sorted(line.name for line in started) == ["workflows.collect", "workflows.part", "workflows.part"]
    assert {line.root_id for line in started} == {sender.id} and sender.sent_by == "run"
    assert len(lines) == STREAM_ABOVE + 10 + 3 and all(line.outcome == "succeeded" for line in lines)


POISON_AMONG_MANY = """
from oomlab import Plan, PlanCalls, TaskCall
from oomlab.scenarios.workflows import app


def plan(ctx):
    def call(index):
        if index == 0:  # acks_late + reject_on_worker_lost, three times the limit: back after every kill
            return TaskCall("workflows.never_fits", (3 * ctx.limit_bytes / 2**20,), label="never fits")
        return TaskCall("workflows.part", (1, 0), label="part")

    return Plan(PlanCalls({tasks}, call))
"""


def test_a_streamed_plan_stops_a_poison_message(tmp_path):
    """A message OOM-killed on every delivery among 1,010 calls: stopped after its kills, a `poison` line."""
    scenario = tmp_path / "poison_among_many.py"
    scenario.write_text(POISON_AMONG_MANY.format(tasks=STREAM_ABOVE + 10))
    record, run_dir, _ = _plan_run(tmp_path, str(scenario), "--memory", "256MiB", "--timeout", "120")
    (poison,) = record["poison"]
    assert poison["task_name"] == "workflows.never_fits" and 1 <= poison["kills"] <= 3
    lines = {line.id: line for line in RunTasks(run_dir)}
    assert lines[poison["task_id"]].outcome == "poison" and record["status"] == "complete"
    assert sum(1 for line in lines.values() if line.outcome == "succeeded") == STREAM_ABOVE + 9
