"""The limits backend on whatever cgroup version this kernel has: on the host (v1 here) and in the
cgroup v2 VM lane (`python -m vmlane tests`), as root and as a user with a delegated subtree.

OOMLAB_EXPECT_CGROUP pins the version a run must report, so a silent fall-back fails the lane.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
from oomlab.assemble.attribution import OOM_NOTICE_LEAD_S
from oomlab.worker.limits.base import read_int, read_text

from tests.conftest import (
    PICTURE_ENV,
    TIME_SCALE,
    assert_nothing_left,
    oomlab_cmd,
    run_dir_from,
    wait_for_tasks_running,
)

pytestmark = pytest.mark.integration
MIB = 2**20


def check_backend(record: dict) -> None:
    expected = os.environ.get("OOMLAB_EXPECT_CGROUP")
    version = record["group"]["cgroup_version"]
    assert record["environment"]["cgroup"] == f"cgroup-v{version}"
    if expected:
        assert version == int(expected), f"ran on cgroup v{version}, expected v{expected}"
    files = record["group"]["files"]
    assert files == (
        {"limit": "memory.max", "usage": "memory.current", "peak": "memory.peak", "events": "memory.events"}
        if version == 2
        else {
            "limit": "memory.limit_in_bytes",
            "usage": "memory.usage_in_bytes",
            "peak": "memory.max_usage_in_bytes",
            "events": "memory.oom_control",
        }
    )
    delegated = os.environ.get("OOMLAB_DELEGATED")
    if delegated:  # the unprivileged lane: the run's group lies inside the subtree it was given
        assert record["group"]["path"].startswith(delegated + "/"), record["group"]["path"]


def assert_one_kill_and_exact_peaks(record: dict, run_dir: str) -> None:
    """alloc with one child: the over-limit task's kill found by every detector and attributed to it,
    and every other task's exact peak (VmHWM reset at prerun) to within 2 MiB of what it allocated."""
    assert record["status"] == "complete"
    over = [t for t in record["tasks"] if t["label"].startswith("over-limit")]
    assert len(over) == 1
    kills = [(k["pid"], k["role"], k["task_id"], k["kernel_time_source"]) for k in record["kills"]]
    assert len(kills) == 1, f"{kills}; oom_kill {record['group'].get('oom_kill_count')}; {run_dir}"
    [kill] = record["kills"]
    assert kill["task_id"] == over[0]["id"] and kill["role"] == "child" and kill["signal"] == "SIGKILL"
    assert kill["pid"] == over[0]["pid"]
    assert over[0]["outcome"] == "killed" and "WorkerLostError" in over[0]["exception"]
    available = record["environment"]["detectors"]
    assert available["oom_event"] and available["pidfd"]
    expected = ["oom_event", "pidfd", "celery_worker_lost"] + (["kmsg"] if available["kmsg"] else [])
    # with the kernel log the kill's time is the kernel's own; without it (an unprivileged user under
    # dmesg_restrict) the group's OOM counter found it and its rise is the time
    assert kill["kernel_time_source"] == ("kmsg" if available["kmsg"] else "oom_event")
    for detector in expected:  # the kernel's kill to each detector's notice
        # the group's OOM notice may come before the stamp: the kernel counts the kill before it stamps it
        earliest = -OOM_NOTICE_LEAD_S if detector == "oom_event" else -0.01
        assert earliest <= kill["detected"][detector] < 10 * TIME_SCALE, (detector, kill["detected"])
    # the tasks this run sent (an attached worker's probe also holds an earlier run's tasks)
    fitting = [t for t in record["tasks"] if t is not over[0] and t.get("sent_by", "run") == "run" and t["label"]]
    for task in fitting:  # VmHWM reset at prerun: the task's own peak, to the page, whatever ran before it
        assert task["outcome"] == "succeeded" and task["peak_is_exact"], task
        asked = float(task["label"].split()[1]) * MIB
        above = task["peak_rss_bytes"] - task["start_rss_bytes"]
        assert abs(above - asked) <= 2 * MIB, f"{task['label']}: peak above start {above / MIB:.2f} MiB"


def test_limited_worker_exact_peaks_and_a_kill_attributed_to_its_task(oomlab):
    # one child: no sibling allocates while the victim exits (under emulation, exit_mmap is slow enough
    # for a sibling's allocation to meet the limit again and the kernel to kill a second process)
    result = oomlab("run", "alloc", "--memory", "256MiB", "--concurrency", "1", "--tasks", "8", env=PICTURE_ENV)
    assert result.code == 0, result.stderr
    record = result.record
    check_backend(record)
    assert_one_kill_and_exact_peaks(record, result.run_dir)
    children = {p["pid"] for p in record["processes"] if p["role"] == "child"}
    assert len(children) >= 2, "the killed child was replaced and the replacement was sampled"
    # the group's own high-water mark (memory.peak on v2): reached the limit, never above it
    assert 200 * MIB < record["summary"]["group_peak_bytes"] <= 256 * MIB
    assert record["group"]["oom_kill_count"] == 1
    assert os.path.getsize(os.path.join(result.run_dir, "samples.csv")) > 0
    assert os.path.exists(os.path.join(result.run_dir, "timeline.png"))
    assert result.stdout.strip().splitlines()[-1] == result.run_dir
    assert_nothing_left(record["run_id"])


def test_group_scope_kills_the_whole_worker_and_the_task_never_finishes(oomlab):
    result = oomlab(
        "run",
        "alloc",
        "--memory",
        "256MiB",
        "--concurrency",
        "2",
        "--tasks",
        "8",
        "--oom-scope",
        "group",
        "--timeout",
        str(20 * TIME_SCALE),
    )
    assert result.code == 11, result.stderr  # the whole worker died with tasks unrun: not complete (worker_lost)
    record = result.record
    assert record["status"] == "worker_lost"
    check_backend(record)
    # v2: memory.oom.group, the kernel kills them all; v1 has none, oomlab kills on the notification
    assert record["group"]["group_kill"].startswith(
        "the kernel" if record["group"]["cgroup_version"] == 2 else "oomlab"
    )
    over = next(t for t in record["tasks"] if t["label"].startswith("over-limit"))
    assert over["outcome"] in ("killed", "stuck", "never_started") and over["state"] in ("STARTED", "PENDING")
    roles = {k["role"] for k in record["kills"]}
    assert roles == {"main", "child"}
    killed = [k["pid"] for k in record["kills"]]
    assert len(killed) == len(set(killed)), "one kill per process (the group's walk names the victim again)"
    main_pid = record["worker"]["pid"]
    assert {main_pid, over["pid"]} <= set(killed)
    first_kill = min(k["kernel_time_mono"] for k in record["kills"])
    alive_then = [p for p in record["processes"] if (p["exited_mono"] or 1e18) >= first_kill]
    assert len(alive_then) == 3, "main and both children"
    # every process alive at the OOM died with the group; the kernel's walk can skip a member that is
    # already exiting (a pool child whose parent it has just killed, seen on 6.1 under emulation)
    assert all(p["exited_mono"] and p["exited_mono"] - first_kill < 2 * TIME_SCALE for p in alive_then), alive_then
    if record["group"]["cgroup_version"] == 2:
        # memory.events counts every member it kills, and the chosen victim a second time when its memory
        # is not yet released as the kernel walks the group (seen both ways on 6.1)
        assert record["group"]["oom_kill_count"] in (len(killed), len(killed) + 1)
    main = next(k for k in record["kills"] if k["role"] == "main")
    assert "celery_heartbeat_expiry" in main["detected"]
    assert_nothing_left(record["run_id"])


@pytest.mark.parametrize(
    "signum,code", [pytest.param(signal.SIGINT, 130, id="SIGINT"), pytest.param(signal.SIGTERM, 143, id="SIGTERM")]
)
def test_interrupted_run_leaves_a_record_and_nothing_else(tmp_path, signum, code):
    proc = subprocess.Popen(
        oomlab_cmd("run", "alloc", "--memory", "256MiB", "--param", "hold=5", "--results", str(tmp_path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run_dir = wait_for_tasks_running(tmp_path)
    group = json.load(open(os.path.join(run_dir, "run.json")))["group"]
    # the limit as written in the group's own files, while the worker runs
    limit_file = os.path.join(group["path"], group["files"]["limit"])
    assert read_int(limit_file) == 256 * MIB
    if group["cgroup_version"] == 2:
        assert read_text(os.path.join(group["path"], "memory.swap.max")).strip() == "0"
        assert read_text(os.path.join(group["path"], "memory.oom.group")).strip() == "0"
    else:
        assert read_int(os.path.join(group["path"], "memory.memsw.limit_in_bytes")) in (256 * MIB, None)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60 * TIME_SCALE)
    assert proc.returncode == code, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    record = json.load(open(os.path.join(run_dir_from(stdout), "run.json")))
    check_backend(record)
    assert record["status"] == "interrupted" and record["tasks"]
    assert not os.path.exists(os.path.join(run_dir, "redis.sock"))
    assert_nothing_left(record["run_id"])


def test_sigkilled_run_is_cleaned_up_by_the_next_one(tmp_path, oomlab):
    proc = subprocess.Popen(
        oomlab_cmd("run", "alloc", "--param", "hold=5", "--results", str(tmp_path)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run_dir = wait_for_tasks_running(tmp_path)
    proc.kill()
    proc.wait()
    record = json.load(open(os.path.join(run_dir, "run.json")))  # the partial record is readable
    assert record["status"] == "running"
    assert os.path.isdir(record["group"]["path"])
    result = oomlab("run", "alloc", "--tasks", "1", "--param", "over=0")
    assert result.code == 0, result.stderr
    # this run, or a parallel one (every run sweeps stale leases), removed what the killed run left:
    # its cgroup and lease outlive a SIGKILL, so without the sweep this fails
    assert_nothing_left(record["run_id"])
    assert not os.path.exists(os.path.join(run_dir, "redis.sock"))
