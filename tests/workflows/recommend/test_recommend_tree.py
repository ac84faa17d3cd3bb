"""recommend plans on each task's whole tree: a program a task runs is in the plan, and a plan its
own trial refutes is never handed over (real workers, real limits)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import TIME_SCALE, oomlab_cmd

pytestmark = pytest.mark.integration
MIB = 2**20
PROGRAM = ["task-tree", "--variant", "subprocess", "--param", "kill=false", "--tasks", "1", "--memory", "512MiB"]


def recommend(results, mib: int, *args: str) -> subprocess.CompletedProcess:
    argv = oomlab_cmd("recommend", *PROGRAM, "--param", f"program_mib={mib}", *args, "--results", str(results))
    return subprocess.run(argv, capture_output=True, text=True, timeout=300 * TIME_SCALE)


@pytest.fixture(scope="module")
def program_plan(tmp_path_factory) -> dict:
    """One measuring run and its proof, shared by the assertions below."""
    results = tmp_path_factory.mktemp("recommend-tree")
    done = recommend(results, 150, "--param", "alternate=false", "--tasks-per-child", "2")
    assert done.returncode == 0, done.stderr
    with open(done.stdout.strip().splitlines()[-1]) as handle:
        return json.load(handle) | {"stdout": done.stdout}


def test_a_program_a_task_runs_is_planned_for(program_plan):
    plan, profile = program_plan["plan"], program_plan["profile"]
    assert max(profile["tree_needs"]) >= 150 * MIB, profile["tree_needs"]  # the program, from the task's leaf
    assert max(profile["marginal_peaks"]) < 32 * MIB  # the pool process alone: what was planned before
    assert plan["concurrency"] >= 1
    assert plan["concurrency"] * 150 * MIB + plan["fixed_bytes"] <= 512 * MIB
    assert "whole tree" in program_plan["stdout"]


def test_the_trial_at_the_recommended_setting_holds_and_says_how_it_filled_its_children(program_plan):
    recommended = program_plan["proof"]["trials"][0]
    assert recommended["concurrency"] == program_plan["plan"]["concurrency"] and not recommended["killed"]
    # the plan makes one call (--tasks 1 with the scenario honouring it): repeated to fill every child twice
    assert recommended["tasks"] >= 2 * recommended["concurrency"], recommended
    assert f"at concurrency {recommended['concurrency']}, sized for 2 a child" in program_plan["stdout"]


def test_a_refuted_plan_is_not_handed_over(tmp_path):
    # measured on one 170 MiB program (--tasks 1), proven on the plan's mix, where every other program
    # is 340 MiB: with no margin 2 children are planned (2 x 222 MiB + the worker's 50 MiB fit), and
    # the trial at 2 runs a 170 and a 340 MiB program at once, which does not (each program keeps its
    # memory a second, so their peaks overlap however the machine schedules them)
    done = recommend(tmp_path, 170, "--param", "hold=1", "--margin", "0%", "--tasks-per-child", "1")
    assert done.returncode == 12, (done.returncode, done.stderr)
    assert "refuted" in done.stderr and "OOM-killed" in done.stderr and "Traceback" not in done.stderr
    assert "task_tree.run_program" in done.stderr  # what was killed
    assert not [name for name in os.listdir(tmp_path) if name.startswith("recommend")], os.listdir(tmp_path)


def test_a_poison_message_in_the_measuring_run_ends_and_is_told(tmp_path):
    # acks_late + reject_on_worker_lost on a task asking for 3 x the limit: the measuring run stops it
    # after three kills, and the plan's reader learns it was a poison message and what ends the loop
    argv = oomlab_cmd("recommend", "workflows", "--variant", "poison", "--memory", "256MiB", "--results", str(tmp_path))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300 * TIME_SCALE)
    assert done.returncode == 13, (done.returncode, done.stderr)  # no safe setting: the task never fits
    assert "workflows.never_fits" in done.stdout and "is a poison message" in done.stdout, done.stdout
    assert "x-delivery-limit" in done.stdout and "Traceback" not in done.stderr
    with open(done.stdout.strip().splitlines()[-1]) as handle:
        profile = json.load(handle)["profile"]
    assert len(profile["poison"]) == 1 and profile["kills"] <= 3, profile["kills"]
