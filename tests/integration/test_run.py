"""`oomlab run` against a real worker, a real cgroup limit and real OOM kills."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.conftest import assert_nothing_left, oomlab_cmd, run_dir_from

pytestmark = pytest.mark.integration
MIB = 2**20


def test_exact_peak_of_a_64_mib_task(oomlab):
    result = oomlab("run", "alloc", "--memory", "384MiB", "--concurrency", "1", "--tasks", "2",
                    "--param", "sizes=64", "--param", "over=0", "--param", "hold=0.1")
    assert result.code == 0, result.stderr
    record = result.record
    assert set(record) >= {"schema", "config", "environment", "tasks", "processes", "kills", "celery_events"}
    assert record["status"] == "complete" and record["kills"] == []
    for task in record["tasks"]:
        assert task["outcome"] == "succeeded" and task["peak_is_exact"]
        assert set(task) >= {"id", "name", "outcome", "pid", "start_rss_bytes", "peak_rss_bytes"}
        above = task["peak_rss_bytes"] - task["start_rss_bytes"]
        assert abs(above - 64 * MIB) <= 2 * MIB, f"peak above start {above / MIB:.2f} MiB"
    assert os.path.getsize(os.path.join(result.run_dir, "samples.csv")) > 0
    assert os.path.exists(os.path.join(result.run_dir, "timeline.png"))
    assert_nothing_left(record["run_id"])


def test_task_over_the_limit_is_killed_attributed_and_the_worker_goes_on(oomlab):
    result = oomlab("run", "alloc", "--memory", "256MiB", "--concurrency", "2", "--tasks", "8")
    assert result.code == 0, result.stderr
    record = result.record
    over = [t for t in record["tasks"] if t["label"].startswith("over-limit")]
    assert len(over) == 1
    [kill] = record["kills"]
    assert kill["task_id"] == over[0]["id"] and kill["role"] == "child" and kill["signal"] == "SIGKILL"
    assert kill["pid"] == over[0]["pid"]
    assert over[0]["outcome"] == "killed" and "WorkerLostError" in over[0]["exception"]
    for detector in ("kmsg", "oom_event", "pidfd", "celery_worker_lost"):
        assert -0.01 <= kill["detected"][detector] < 10, (detector, kill["detected"])
    others = [t for t in record["tasks"] if t is not over[0]]
    assert all(t["outcome"] == "succeeded" for t in others)
    children = {p["pid"] for p in record["processes"] if p["role"] == "child"}
    assert len(children) >= 3, "the killed child was replaced and the replacement was sampled"
    assert record["summary"]["group_peak_bytes"] <= 256 * MIB
    assert result.stdout.strip().splitlines()[-1] == result.run_dir
    assert_nothing_left(record["run_id"])


def test_group_scope_kills_the_whole_worker_and_the_task_is_stuck(oomlab):
    result = oomlab("run", "alloc", "--memory", "256MiB", "--concurrency", "2", "--tasks", "8",
                    "--oom-scope", "group", "--timeout", "20")
    assert result.code == 0, result.stderr
    record = result.record
    over = next(t for t in record["tasks"] if t["label"].startswith("over-limit"))
    assert over["outcome"] in ("stuck", "never_started") and over["state"] in ("STARTED", "PENDING")
    roles = {k["role"] for k in record["kills"]}
    assert roles == {"main", "child"}
    killed = {k["pid"] for k in record["kills"]}
    first_kill = min(k["kernel_time_mono"] for k in record["kills"])
    alive_then = {p["pid"] for p in record["processes"] if (p["exited_mono"] or 1e18) >= first_kill}
    assert killed >= alive_then, "every process alive at the OOM died with the group"
    assert len(alive_then) == 3, "main and both children"
    main = next(k for k in record["kills"] if k["role"] == "main")
    assert "celery_heartbeat_expiry" in main["detected"]
    assert_nothing_left(record["run_id"])


def test_startup_that_cannot_fit_is_reported_in_bounded_time(oomlab):
    started = time.monotonic()
    result = oomlab("run", "startup", "--memory", "256MiB", "--concurrency", "4")
    assert time.monotonic() - started < 60
    assert result.code == 4
    assert "worker killed during start-up: 4 children ×" in result.stderr
    assert "> 256.0 MiB limit" in result.stderr
    record = result.record
    assert record["status"] == "worker_start_failed"
    assert record["kills"] and all(k["during_startup"] for k in record["kills"])
    assert_nothing_left(record["run_id"])


def test_startup_fits_with_one_child(oomlab):
    result = oomlab("run", "startup", "--memory", "256MiB", "--concurrency", "1", "--tasks", "2")
    assert result.code == 0, result.stderr
    assert [t["outcome"] for t in result.record["tasks"]] == ["succeeded", "succeeded"]


def test_limit_below_what_the_main_process_needs(oomlab):
    result = oomlab("run", "alloc", "--memory", "24MiB", "--concurrency", "1", "--start-timeout", "30")
    assert result.code == 4
    assert "main process was OOM-killed during start-up" in result.stderr
    assert_nothing_left(result.record["run_id"])


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_run_leaves_a_record_and_nothing_else(tmp_path, signum, code):
    proc = subprocess.Popen(oomlab_cmd("run", "alloc", "--param", "hold=5", "--results", str(tmp_path)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_tasks_running(tmp_path)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    run_dir = run_dir_from(stdout)
    import json

    record = json.load(open(os.path.join(run_dir, "run.json")))
    assert record["status"] == "interrupted" and record["tasks"]
    assert not os.path.exists(os.path.join(run_dir, "redis.sock"))
    assert_nothing_left(record["run_id"])


def test_sigkilled_run_is_cleaned_up_by_the_next_one(tmp_path, oomlab):
    proc = subprocess.Popen(oomlab_cmd("run", "alloc", "--param", "hold=5", "--results", str(tmp_path)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = _wait_for_tasks_running(tmp_path)
    proc.kill()
    proc.wait()
    import json

    record = json.load(open(os.path.join(run_dir, "run.json")))  # the partial record is readable
    assert record["status"] == "running"
    result = oomlab("run", "alloc", "--tasks", "1", "--param", "over=0")
    assert result.code == 0, result.stderr
    # this run, or a parallel one (every run sweeps stale leases), removed what the killed run left:
    # its cgroup and lease outlive a SIGKILL, so without the sweep this fails
    assert_nothing_left(record["run_id"])
    assert not os.path.exists(os.path.join(run_dir, "redis.sock"))


def _wait_for_tasks_running(results, timeout=60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in os.listdir(results) if os.path.isdir(results) else []:
            probe = os.path.join(results, name, "probe.jsonl")
            if os.path.exists(probe) and '"prerun"' in open(probe).read():
                time.sleep(0.5)  # let a checkpoint of run.json include the tasks
                return os.path.join(results, name)
        time.sleep(0.1)
    raise AssertionError("no task started within the timeout")
