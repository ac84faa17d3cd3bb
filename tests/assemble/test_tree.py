"""A task's whole tree under real limits: programs it runs, helpers it forks, pools it starts, each
counted by the kernel in its pool child's leaf memory cgroup, and each OOM kill of them pinned on
the task (cgroup v1 here; v2 in the VM lane: `python -m vmlane tests tests/assemble/test_tree.py`)."""

from __future__ import annotations

import os
import sys

import pytest
from oomlab.assemble.outcomes import UNREAD_COMMAND
from oomlab.scenarios.task_tree import PROGRAM
from oomlab.worker import proc
from oomlab.worker.limits import open_cgroup_backend

from tests.conftest import assert_nothing_left

pytestmark = pytest.mark.integration
MIB = 2**20


def kernel_peak_of_program(mib: int, tmp_path) -> int:
    """The program alone in a fresh memory cgroup of its own: the kernel's peak for it."""
    group = open_cgroup_backend(f"truth-test-{os.getpid()}-{mib}")
    group.create(512 * MIB, "process")
    group.prepare_leaves()  # as a run does: on v2 a process joins the group's leaf-main
    try:
        child = proc.spawn(
            [sys.executable, "-c", PROGRAM, str(mib), "0"],
            log_path=str(tmp_path / "program.log"),
            join_cgroup=group.join_file,
        )
        assert child.wait(timeout=60) == 0
        return group.peak_bytes()
    finally:
        group.remove()


def check_leaves(record: dict) -> None:
    assert all(t["tree_peak_is_exact"] for t in record["tasks"] if t["outcome"] == "succeeded"), [
        t["tree_note"] for t in record["tasks"]
    ]
    assert not os.path.exists(record["worker"]["tmpdir"]), "the worker's TMPDIR (billiard's pymp-*) was left"
    assert_nothing_left(record["run_id"])


def test_a_program_a_task_runs_is_in_its_peak_and_its_kill_is_the_tasks(oomlab, tmp_path):
    result = oomlab("run", "task-tree", "--variant", "subprocess", "--param", "program_mib=64", "--tasks", "2")
    assert result.code == 0, result.stderr
    record = result.record
    fitting = [t for t in record["tasks"] if t["label"].startswith("program")]
    alone = {mib: kernel_peak_of_program(mib, tmp_path) for mib in (64, 128)}
    for task, mib in zip(fitting, (64, 128), strict=True):
        assert task["outcome"] == "succeeded"
        own_growth = task["peak_above_start_bytes"]  # the task's 16 MiB, exact (VmHWM)
        expected = own_growth + alone[mib]
        # 1.39 MiB off was seen once in CI under load (its cause not traced; the pool child's pages
        # copied between its fork and the program's exec are one candidate): 2 MiB of slack
        assert abs(task["tree_peak_above_start_bytes"] - expected) <= 2 * MIB, (
            f"tree {task['tree_peak_above_start_bytes'] / MIB:.2f} MiB, expected {expected / MIB:.2f} MiB "
            f"(task {own_growth / MIB:.2f} + program alone {alone[mib] / MIB:.2f})"
        )
        assert len(task["descendants"]) == 1, task["descendants"]
        (program,) = task["descendants"]
        # the sampler reads the command line; a short program seen only mid-exec (slow VMs) reads "?"
        assert program["command"] == UNREAD_COMMAND or program["command"].split()[1] == "-c", program
        assert task["descendants"][0]["ended"] == "exited"
        # the program's ru_maxrss starts from the pool child's RSS (carried over fork and exec): an exact
        # figure is one the program could not have inherited, above every high-water mark of its parent
        if program["peak_is_exact"]:
            assert program["peak_rss_bytes"] > task["peak_rss_bytes"], (program, task["peak_rss_bytes"])
    assert fitting[1]["descendants"][0]["peak_is_exact"], fitting[1]["descendants"]  # 128 MiB: its own
    assert fitting[1]["descendants"][0]["peak_rss_bytes"] >= 128 * MIB
    over = next(t for t in record["tasks"] if t["label"].startswith("over-limit"))
    assert over["outcome"] == "descendant_killed"
    kill = next(k for k in record["kills"] if k["task_id"] == over["id"])
    assert kill["role"] == "descendant" and kill["owner_pid"] == over["pid"] and "-c" in kill["command"]
    assert [k["pid"] for k in over["killed_descendants"]] == [kill["pid"]]
    assert any("OOM-killed" in f and over["id"] in f for f in record["summary"]["findings"])
    check_leaves(record)


def test_a_small_programs_peak_is_never_its_parents(oomlab):
    """A 4 MiB program started by a ~60 MiB pool child: Linux starts the program's ru_maxrss from the
    parent's RSS, so that figure is not the program's and is not given as exact."""
    result = oomlab("run", "task-tree", "--variant", "subprocess", "--param", "program_mib=4", "--tasks", "2")
    assert result.code == 0, result.stderr
    fitting = [t for t in result.record["tasks"] if t["label"].startswith("program")]
    assert len(fitting) == 2 and all(t["outcome"] == "succeeded" for t in fitting)
    for task in fitting:
        (program,) = task["descendants"]
        assert not program["peak_is_exact"] or program["peak_rss_bytes"] > task["peak_rss_bytes"], (program, task)
        assert program["peak_rss_bytes"] is None or program["peak_rss_bytes"] < 40 * MIB, program


def test_a_forked_helper_is_counted_and_its_kill_attributed(oomlab):
    result = oomlab("run", "task-tree", "--variant", "fork", "--param", "program_mib=48", "--tasks", "1")
    assert result.code == 0, result.stderr
    record = result.record
    task, over = record["tasks"]
    assert task["outcome"] == "succeeded"
    assert task["tree_peak_above_start_bytes"] >= task["peak_above_start_bytes"] + 48 * MIB
    said = {"over": over, "kills": record["kills"], "findings": record["summary"]["findings"]}
    assert over["outcome"] == "descendant_killed", said
    assert [k["role"] for k in record["kills"]] == ["descendant"], said
    assert record["kills"][0]["task_id"] == over["id"]
    check_leaves(record)


def test_multiprocessing_in_prefork_is_explained_and_billiard_is_measured(oomlab):
    failing = oomlab("run", "task-tree", "--variant", "bad", "--tasks", "1").record
    assert failing["tasks"][0]["outcome"] == "failed"
    assert any("daemonic" in f and "billiard" in f for f in failing["summary"]["findings"])
    working = oomlab("run", "task-tree", "--variant", "fixed", "--param", "program_mib=64", "--tasks", "1").record
    task = working["tasks"][0]
    assert task["outcome"] == "succeeded"
    assert len(task["descendants"]) == 2  # the pool's two processes, born in the task's leaf
    # each pool process touches 32 MiB (at once or one after the other): the pool child itself did not
    assert task["peak_above_start_bytes"] < 8 * MIB
    assert task["tree_peak_above_start_bytes"] >= 32 * MIB + task["peak_above_start_bytes"]
    check_leaves(working)


def test_a_task_writing_more_than_the_limit_needs_little_and_touched_the_page_cache(oomlab):
    # 300 MiB written and read back under 256 MiB: the kernel reclaims the cache as it goes, the task
    # lives, its tree peak is the cache it touched, and what a limit must hold for it is small
    result = oomlab(
        "run", "task-tree", "--variant", "write", "--param", "program_mib=300", "--tasks", "1", "--memory", "256MiB"
    )
    assert result.code == 0, result.stderr
    (task,) = result.record["tasks"]
    assert task["outcome"] == "succeeded"
    assert task["needs_above_start_bytes"] is not None and task["needs_above_start_bytes"] < 32 * MIB, task
    assert not task["needs_is_exact"] and "sampled" in task["needs_note"]
    assert task["page_cache_above_start_bytes"] >= 100 * MIB
    assert task["tree_peak_above_start_bytes"] >= task["page_cache_above_start_bytes"] - MIB
    assert "needs" in result.stdout and "of page cache" in result.stdout
    with open(os.path.join(result.run_dir, "report.html")) as page:
        assert "page cache" in page.read()
