"""`oomlab recommend --rate` choosing a pool, and proving the choice under load, with real workers
under real limits. pool_choice's `io` variant reads a 48 MiB table of floats built in the main
process at import, then waits 0.2 s: every prefork child writes the floats' reference counts and so
copies the table's pages, while threads and gevent share one copy. Its `cpu` variant computes (here 100 ms a task):
one process runs Python on one core at a time, prefork's children use every core."""

from __future__ import annotations

import json
import os

import pytest

pytestmark = pytest.mark.integration
MIB = 1024 * 1024


def recommend(oomlab, tmp_path, scenario: str, *args: str) -> dict:
    result = oomlab("recommend", scenario, *args, "--results", str(tmp_path), timeout=300)
    assert result.code == 0, result.stderr
    with open(result.stdout.strip().splitlines()[-1]) as handle:
        return json.load(handle) | {"stdout": result.stdout}


def best(report: dict, pool: str) -> dict:
    return next(row for row in report["rows"] if row["candidate"]["pool"] == pool)


def test_an_io_bound_mix_with_a_large_shared_table_runs_on_threads_or_gevent(oomlab, tmp_path):
    report = recommend(
        oomlab,
        tmp_path,
        "pool_choice",
        "--variant",
        "io",
        "--rate",
        "20/s",
        "--memory",
        "256MiB",
        "--pools",
        "prefork,threads,gevent",
        "--measure-seconds",
        "2s",
        "--no-prove",
    )
    choice, prefork = report["choice"]["candidate"], best(report, "prefork")
    assert choice["pool"] in ("threads", "gevent"), report["stdout"]
    # the profile: a child's private pages grow by most of the 36 MiB of float objects it touches
    (profile,) = report["profiles"].values()
    copied = profile["child_max_uss_bytes"] - profile["child_idle_uss_bytes"] - max(profile["marginal_peaks"])
    assert copied >= 30 * MIB, profile
    assert prefork["candidate"]["slot_bytes"] >= copied and prefork["candidate"]["concurrency"] < choice["concurrency"]
    assert prefork["total_bytes"] >= 2 * report["choice"]["total_bytes"], report["stdout"]
    reason = next(line for line in report["why"] if " over prefork:" in line)
    # the cost named: the shared pages a child copied, or (when its children started together and
    # grew more before their first task than after) what a child holds once started
    assert "copied as its tasks wrote to them" in reason or "children starting together" in reason, reason
    assert reason in report["stdout"]


def test_a_cpu_bound_mix_runs_on_prefork(oomlab, tmp_path):
    assert len(os.sched_getaffinity(0)) >= 2, "prefork outruns one process only with two cores or more"
    report = recommend(
        oomlab,
        tmp_path,
        "pool_choice",
        "--variant",
        "cpu",
        "--param",
        "cpu_ms=100",
        "--rate",
        "10/s",
        "--memory",
        "256MiB",
        "--pools",
        "prefork,threads,gevent",
        "--max-concurrency",
        "4",
        "--measure-seconds",
        "2s",
        "--no-prove",
    )
    assert report["choice"]["candidate"]["pool"] == "prefork", report["stdout"]
    for pool in ("threads", "gevent"):
        one_process = best(report, pool)["candidate"]
        # 100 ms of computing and Celery's own work per task, on the one core one process can use
        assert 0.095 <= one_process["cpu_per_task_s"] <= 0.15, one_process
        assert one_process["cores_usable"] == 1 and one_process["cpu_bound"], one_process
        assert one_process["per_replica_per_s"] <= 1.1 / one_process["cpu_per_task_s"], one_process
    assert best(report, "prefork")["candidate"]["cores_usable"] == 2
    assert any(" over threads:" in line and "the GIL" in line for line in report["why"]), report["stdout"]


def test_the_proof_recycles_measures_the_leak_and_the_step_up_is_killed(oomlab, tmp_path):
    # 4 MiB leaked per task: the plan recycles each child; one past the safe concurrency is OOM-killed
    report = recommend(
        oomlab,
        tmp_path,
        "leak",
        "--variant",
        "bad",
        "--param",
        "leak_mib=4",
        "--rate",
        "8/s",
        "--memory",
        "256MiB",
        "--pools",
        "prefork",
        "--max-concurrency",
        "2",
        "--measure-seconds",
        "3s",
        "--prove-seconds",
        "4s",
    )
    proof, chosen = report["proof"], report["choice"]["candidate"]
    held = proof["setting"]
    assert proof["held"] and held["kills"] == 0 and held["status"] == "complete", report["stdout"]
    assert held["recycled"] >= 1 and held["recycling"]["children_recycled"] == held["recycled"]
    assert proof["seconds"] >= 4  # longer when recycling needs it
    growth = held["soak"]["growth_per_1000_tasks_per_child_bytes"]
    assert 3000 * MIB <= growth <= 5000 * MIB and held["soak"]["significant"], held["soak"]
    assert proof["step_up_concurrency"] == chosen["safe_concurrency"] + 1 > chosen["concurrency"]
    assert "children replaced" in report["stdout"] and "leak slope: each pool child grew" in report["stdout"]
    # the step up is killed, or holds and is reported as conservative with its room. Before the plan
    # counted N children starting together it was killed at start-up, before any load (9 children)
    if proof["step_up_killed"]:
        assert proof["step_up"]["kills"] >= 1 and "the safe concurrency is a measured boundary" in report["stdout"]
    else:
        assert proof["step_up_room_bytes"] > 0 and "conservative" in report["stdout"], report["stdout"]


def test_a_step_up_that_holds_says_the_setting_is_conservative_and_by_how_much(oomlab, tmp_path):
    # 25 % margin at 288 MiB: one child per plan (104 MiB main and table + 65 MiB a child), while two
    # children (234 MiB) fit under the limit itself
    report = recommend(
        oomlab,
        tmp_path,
        "pool_choice",
        "--rate",
        "4/s",
        "--memory",
        "288MiB",
        "--margin",
        "25%",
        "--pools",
        "prefork",
        "--measure-seconds",
        "2s",
        "--prove-seconds",
        "3s",
    )
    proof = report["proof"]
    assert proof["held"] and proof["setting"]["kills"] == 0, report["stdout"]
    assert proof["step_up_concurrency"] == report["choice"]["candidate"]["concurrency"] + 1 == 2
    assert proof["step_up_killed"] is False and proof["step_up"]["kills"] == 0, report["stdout"]
    room = proof["step_up_room_bytes"]
    assert room == 288 * MIB - proof["step_up"]["group_peak_bytes"] and room > 0
    assert "HELD at the same rate" in report["stdout"] and "conservative" in report["stdout"]
