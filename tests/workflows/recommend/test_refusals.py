"""A plan refuted by its own proof is never handed over, in every mode of recommend: the limit for a
--concurrency whose trial at that limit was OOM-killed (a real run), and a --rate setting killed under
load (exit 12, nothing written); a --rate proof on cores it had to share hands over the memory it
proved, marked so, in the terminal, the page and the JSON (recorded proofs)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace

import pytest
from oomlab.report.capacity import proof_lines
from oomlab.report.html_capacity import handover_section, proof_section
from oomlab.workflows.recommend.cpu_use import CpuUse
from oomlab.workflows.recommend.load_proof import LoadProof, memory_only, not_handed_over, proven, refuted_by_oom
from oomlab.workflows.recommend.throughput import LoadResult

from tests.conftest import TIME_SCALE, oomlab_cmd

MIB = 2**20
SHARED = CpuUse(window_s=10.0, worker_cpu_s=9.0, worker_wait_s=4.0, machine_busy_s=19.0, cores=2)
OWN = CpuUse(window_s=10.0, worker_cpu_s=9.0, worker_wait_s=0.1, machine_busy_s=9.5, cores=2)


def _proof(kills=0, cpu=SHARED, kept_up=False, wait_met=None, status="complete") -> LoadProof:
    run = LoadResult("runs/at-setting", status, 8.0, 6.0, 5.1, 0.4, kills, 0, 180 * MIB, 8.0, 30, 0.3, cpu)
    held = not kills and status == "complete" and wait_met is not False
    proof = LoadProof(run, None, per_replica_per_s=8.0, seconds=6.0, held=held, kept_up=kept_up)
    proof.queue_wait_met = wait_met
    proof.verdicts = ["the setting did NOT hold" if not held else "the setting held"]
    return replace(proof, proven=proven(proof))


def test_on_shared_cores_the_memory_it_proved_is_handed_over_marked():
    behind = _proof(wait_met=False)  # 0 OOM kills; fell behind and missed the queue wait while others held cores
    assert not refuted_by_oom(behind) and not not_handed_over(behind)
    mark = memory_only(behind)
    assert mark.startswith("memory only: 0 OOM kills at 8/s for 6 s (group peak 180.0 MiB)")
    assert "throughput NOT proven: other processes kept 1.0 of the 2 cores busy" in mark
    assert "proven: " + mark in proof_lines(behind)
    record = {"proof": {"proven": mark, "setting": {}}, "handover": {"one_class": ["x/a-celeryconfig.py"]}}
    record["handover_marks"] = {"one_class": mark}
    page = "".join(proof_section(record, "x") + handover_section(record, "x"))
    assert page.count("throughput NOT proven") == 2 and "memory only" in page


def test_on_cores_of_its_own_a_missed_rate_is_not_handed_over_and_a_kept_one_is_not_marked():
    missed = _proof(cpu=OWN, wait_met=False)
    assert not memory_only(missed) and not_handed_over(missed).startswith("the proof under load did NOT hold")
    kept = _proof(cpu=SHARED, kept_up=True, wait_met=True)
    assert kept.proven == "memory and throughput" and not memory_only(kept) and not not_handed_over(kept)


def test_an_oom_kill_at_the_setting_refutes_it():
    killed = _proof(kills=2)
    assert killed.proven.startswith("nothing: the setting was OOM-killed") and not memory_only(killed)
    why = refuted_by_oom(killed)
    assert why.startswith("the plan is refuted") and "2 OOM kill(s)" in why and "runs/at-setting" in why
    assert refuted_by_oom(_proof(status="worker_start_failed"))
    assert refuted_by_oom(None) == ""  # --no-prove


@pytest.mark.integration
def test_a_limit_for_a_concurrency_whose_own_trial_is_killed_is_not_handed_over(tmp_path):
    # one 170 MiB program measured (--tasks 1); the trial at the limit for 2 children with no margin runs
    # the plan's mix, a 170 and a 340 MiB program at once, which that limit does not hold
    argv = oomlab_cmd(
        "recommend",
        "task-tree",
        *("--variant", "subprocess", "--param", "kill=false", "--param", "program_mib=170", "--tasks", "1"),
        *("--param", "hold=1"),  # each program keeps its memory a second: the two overlap however scheduled
        *("--concurrency", "2", "--margin", "0%", "--tasks-per-child", "1", "--results", str(tmp_path)),
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300 * TIME_SCALE)
    assert done.returncode == 12, (done.returncode, done.stdout, done.stderr)
    assert "refuted" in done.stderr and "OOM-killed" in done.stderr and "Traceback" not in done.stderr
    assert "--concurrency 2" in done.stderr and "task_tree.run_program" in done.stderr
    assert "just below" not in done.stdout  # no trial after the refuting one
    assert not [name for name in os.listdir(tmp_path) if name.startswith("recommend")], os.listdir(tmp_path)
