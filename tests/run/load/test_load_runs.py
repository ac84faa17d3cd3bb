"""Load runs end to end: real workers under real limits on the embedded broker, through the CLI.

Each run is a few seconds: a 50 ms task at concurrency 2 tops out at ~40/s, so 60/s must fall
behind with a growing backlog; a ramp sends its area; a closed loop never has more than N out; a
leak's slope projects its own kill; the harness's cost does not grow with the tasks sent; and an
interrupted run keeps its stream and leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from oomlab.record.stream import RunTasks

from tests.conftest import assert_nothing_left, oomlab_cmd, run_dir_from, wait_for_tasks_running

pytestmark = pytest.mark.integration
MIB = 1 << 20


def _load(result) -> dict:
    assert result.code == 0, result.stderr
    return result.record["load"]


def test_rate_beyond_the_worker_says_so_and_the_backlog_grows(oomlab):
    result = oomlab("run", "noop", "--param", "sleep=0.05", "--concurrency", "2", "--rate", "60/s", "--duration", "5s")
    load = _load(result)
    assert load["counts"]["sent"] == 300 and load["counts"]["succeeded"] == 300
    assert load["offered_per_s"] == pytest.approx(60, rel=0.02)
    assert 25 <= load["achieved_per_s"] <= 41  # 2 children x 1 / 50 ms = 40/s at best
    assert load["latency"]["queue_wait"]["p95"] > 0.5  # tasks waited behind the backlog
    depth = load["series"]["queue_depth"]["values"]
    assert max(depth) >= 40 and depth.index(max(depth)) >= 3  # grew while sending, highest near the end
    assert any("could not keep up" in sentence for sentence in load["findings"])
    assert "could not keep up" in result.stdout
    assert "achieved" in result.stderr and "queue depth" in result.stderr  # the live view's plain lines (no terminal)
    lines = list(RunTasks(result.run_dir))
    assert len(lines) == 300 and all(t.peak_is_exact for t in lines)


def test_stage_ramp_sends_its_area_rising_then_falling(oomlab):
    load = _load(oomlab("run", "noop", "--stages", "3s:40/s,3s:0/s"))
    assert load["counts"]["sent"] == 120  # (0+40)/2*3 + (40+0)/2*3
    offered = load["series"]["offered"]["values"]
    assert offered[0] < offered[2] and offered[5] < offered[3]
    assert abs(load["schedule"]["offered_error_percent"]) < 5
    assert load["by_task"]["noop.run"]["offered_per_s"] == load["offered_per_s"]  # one rule for the name and all


def test_closed_loop_keeps_n_in_flight(oomlab):
    result = oomlab("run", "noop", "--param", "sleep=0.02", "--in-flight", "3", "--tasks", "80")
    load = _load(result)
    assert load["counts"]["sent"] == 80 and load["counts"]["succeeded"] == 80
    assert max(load["series"]["in_flight"]["values"]) <= 3
    assert load["shape"]["kind"] == "closed"


def test_a_leak_is_projected_within_20_percent_of_its_kill(oomlab):
    result = oomlab(
        "run", "leak", "--param", "leak_mib=4", "--param", "hold=0.05", "--rate", "12/s", "--duration", "8s"
    )
    load = _load(result)
    soak = load["soak"]
    assert load["oom_kills"] >= 1, "the leak never reached the limit"
    assert soak["growth_per_1000_tasks_per_child_bytes"] == pytest.approx(4000 * 2**20, rel=0.1)
    first, killed_at = soak["first_projection"], soak["first_kill_at_task"]
    assert first["made_at_task"] < killed_at
    assert first["limit_reached_at_task"] == pytest.approx(killed_at, rel=0.2), soak
    assert soak["recycling"]["worker_max_tasks_per_child"] >= 1
    [grows] = [sentence for sentence in load["findings"] if "grows" in sentence]
    assert f"the first kill came at task {killed_at}" in grows and "reaches its limit" not in grows, grows


@pytest.mark.timeout(600)
def test_harness_cost_does_not_grow_with_tasks(oomlab):
    """20,000 against 2,000 no-op tasks: ~40 s here on a quiet machine (~550 tasks/s), up to ~4 min
    when the 2 cores are shared with other runs (~100 tasks/s)."""
    small, large = (
        _load(oomlab("run", "noop", "--in-flight", "40", "--tasks", str(n), timeout=560)) for n in (2000, 20000)
    )
    assert large["counts"]["succeeded"] == 20000
    cost_small, cost_large = small["harness"], large["harness"]
    assert cost_large["oomlab_peak_rss_bytes"] <= 1.2 * cost_small["oomlab_peak_rss_bytes"], (cost_small, cost_large)
    assert cost_large["checkpoint_seconds"]["p50"] <= 2.5 * cost_small["checkpoint_seconds"]["p50"]


def test_run_json_stays_small(oomlab):
    result = oomlab("run", "noop", "--rate", "100/s", "--duration", "3s")
    _load(result)
    with open(os.path.join(result.run_dir, "run.json")) as handle:
        record = json.load(handle)
    assert os.path.getsize(os.path.join(result.run_dir, "run.json")) < 200_000 and record["tasks"] == []
    assert not [e for e in record["celery_events"] if e["type"] in ("task-received", "task-started", "task-succeeded")]
    # a load run does not ask the worker for task events at all (three per task): the probe says what each did
    assert record["worker"]["celery_conf"]["worker_send_task_events"] is False
    assert any(e["type"].startswith("worker-") for e in record["celery_events"]), "worker events still flow"
    assert record["summary"]["outcomes"]["succeeded"] == 300 and record["summary"]["peak_rss_bytes"]["n"] == 300


def test_an_interrupted_load_run_leaves_its_stream_and_nothing_else(tmp_path):
    proc = subprocess.Popen(
        oomlab_cmd(
            "run", "noop", "--param", "sleep=0.05", "--rate", "60/s", "--duration", "60s", "--results", str(tmp_path)
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run_dir = wait_for_tasks_running(tmp_path)
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    record = json.load(open(os.path.join(run_dir_from(stdout), "run.json")))
    assert record["status"] == "interrupted"
    tasks = RunTasks(run_dir)
    streamed = list(tasks)
    assert len(streamed) == record["load"]["counts"]["sent"] > 0  # every task sent is in the stream, final or not
    assert {t.outcome for t in streamed} >= {"succeeded"} and tasks.check.malformed == 0
    # offered over the part of the schedule that ran before the interruption, not the whole 60 s
    assert abs(record["load"]["offered_per_s"] - 60) < 6, record["load"]["offered_per_s"]
    assert not any("schedule itself was off" in f for f in record["load"]["findings"]), record["load"]["findings"]
    assert_nothing_left(record["run_id"])


def test_each_exception_type_a_load_runs_tasks_failed_with_is_a_finding(oomlab):
    # multiprocessing.Pool inside a prefork child fails ("daemonic processes are not allowed to have
    # children"): the exception reaches each task's line and one finding names its type and message
    result = oomlab("run", "task-tree", "--variant", "bad", "--in-flight", "1", "--tasks", "2")
    load = _load(result)
    assert load["counts"]["failed"] == 2
    lines = list(RunTasks(result.run_dir).streamed())
    assert [line.outcome for line in lines] == ["failed", "failed"]
    assert all(line.exception and "daemonic" in line.exception for line in lines), [x.exception for x in lines]
    (sentence,) = [f for f in load["findings"] if "failed with" in f]
    assert sentence.startswith("2 task(s) failed with AssertionError, first in task_tree.") and "daemonic" in sentence
    assert sentence in result.stdout
    assert "AssertionError ×2" in result.stdout  # the table per task name, failures by exception type


def test_a_load_runs_task_running_a_program_reads_its_tree_and_needs_like_a_plan_runs(oomlab):
    # each task runs a program that allocates 100 MiB and exits before the task ends: its end reading
    # is back at the start, so only the tree's peak and the leaf sampled during the task can see it
    result = oomlab(
        "run", "task-tree", "--variant", "subprocess", "--memory", "512MiB", "--in-flight", "1", "--tasks", "2",
        "--param", "program_mib=100", "--param", "own_mib=1", "--param", "alternate=false", "--param", "kill=false",
    )  # fmt: skip
    load = _load(result)
    lines = list(RunTasks(result.run_dir).streamed())
    assert [line.outcome for line in lines] == ["succeeded", "succeeded"]
    for line in lines:
        assert line.tree_peak_is_exact and (line.tree_peak_above_start_bytes or 0) >= 90 * MIB, line
        assert (line.needs_above_start_bytes or 0) >= 90 * MIB, line
        assert "sampled during the task" in (line.needs_note or "")
        assert (line.peak_above_start_bytes or 0) < 20 * MIB  # the pool process itself hardly grew
    summary = result.record["summary"]
    assert summary["tree_peak_above_start_bytes"]["n"] == 2 and summary["needs_above_start_bytes"]["n"] == 2
    assert summary["needs_above_start_bytes"]["max"] >= 90 * MIB
    figures = load["by_task"]["task_tree.run_program"]
    assert figures["needs_above_start_bytes"]["max"] >= 90 * MIB
    assert figures["tree_peak_above_start_bytes"]["max"] >= 90 * MIB
    # the terminal's table per task name, from the load section's figures
    (row,) = [r for r in result.stdout.splitlines() if "task_tree.run_program" in r and "│" in r and "MiB" in r]
    assert "per task name" in result.stdout
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[1] == "2" and cells[5].endswith("MiB") and float(cells[5].split()[0]) >= 90, row
