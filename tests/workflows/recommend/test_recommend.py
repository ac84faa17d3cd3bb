"""`oomlab recommend` on built-in scenarios: the plan is proven by trial runs under the real limit."""

from __future__ import annotations

import json
import os

import pytest
from oomlab.config.sizes import format_size
from oomlab.record.fleet import load_fleet
from oomlab.record.schema import load_run

pytestmark = pytest.mark.integration


def recommend(oomlab, tmp_path, *args, code: int = 0) -> dict:
    result = oomlab("recommend", *args, "--results", str(tmp_path), timeout=240)
    assert result.code == code, result.stderr
    with open(result.stdout.strip().splitlines()[-1]) as handle:
        return json.load(handle) | {"stdout": result.stdout}


def test_recommended_concurrency_holds_and_the_next_step_up_is_killed(oomlab, tmp_path):
    # every task holds 48 MiB for a second, so N + 1 children overlap at their peaks. The default
    # margin (10 %): a child measured alone privately held 64 MiB at worst, 78 MiB beside two others
    # (both measured here), so with no margin the plan's third child sits exactly at the limit
    report = recommend(
        oomlab,
        tmp_path,
        "alloc",
        "--memory",
        "256MiB",
        "--tasks",
        "4",
        "--param",
        "over=0",
        "--param",
        "sizes=48",
        "--param",
        "hold=1",
    )
    plan, trials = report["plan"], report["proof"]["trials"]
    assert plan["concurrency"] >= 2
    assert trials[0]["concurrency"] == plan["concurrency"] and not trials[0]["killed"]
    assert trials[1]["concurrency"] == plan["concurrency"] + 1 and trials[1]["killed"]
    assert report["proof"]["smallest_failing"] == plan["concurrency"] + 1  # a real boundary
    assert "worker_concurrency = " in report["snippet"] and "mem_limit: 256m" in report["snippet"]


def test_prefork_cow_memory_per_child_does_not_recycle_after_every_task(oomlab, tmp_path):
    report = recommend(oomlab, tmp_path, "prefork-cow", "--variant", "fixed", "--memory", "384MiB")
    plan, profile = report["plan"], report["profile"]
    recommended = report["proof"]["trials"][0]
    assert not recommended["killed"]
    # ru_maxrss counts the ~130 MiB of pages shared with the main process: the threshold must too
    assert plan["max_memory_per_child_kib"] * 1024 > profile["child_start_rss_bytes"] + max(profile["marginal_peaks"])
    assert recommended["recycled"] < recommended["tasks"] / 2, recommended
    # ps shows each child's shared pages as its own: the rule of thumb undershoots, and says so
    assert plan["rule_of_thumb"] < plan["concurrency"]
    assert "the rule of thumb" in report["stdout"] and "undershoots" in report["stdout"]


def test_spike_has_no_safe_setting(oomlab, tmp_path):
    report = recommend(oomlab, tmp_path, "spike", "--memory", "256MiB", code=13)
    plan, profile = report["plan"], report["profile"]
    assert plan["concurrency"] == 0 and report["proof"] is None
    verdict = plan["no_safe_setting"]
    assert "no concurrency is safe" in verdict and "own queue" in verdict
    assert profile["kills"] and "OOM kill(s)" in verdict and "the scenario's fixed variant" in verdict
    assert f"one task, {profile['killed_task']}," in verdict
    assert plan["rule_of_thumb"] >= 1  # the rule of thumb would run it anyway: an overshoot
    assert "no safe setting" in report["stdout"] and "trial runs" not in report["stdout"]
    assert "concurrency 0" not in report["stdout"]


def test_no_safe_setting_without_a_kill_says_so_and_names_the_task(oomlab, tmp_path):
    """One 100 MiB task fits alone under 256 MiB but not inside a 50 % margin: the measuring run was
    not killed, and alloc has no fixed variant."""
    args = ("alloc", "--memory", "256MiB", "--margin", "50%", "--tasks", "2")
    report = recommend(oomlab, tmp_path, *args, "--param", "over=0", "--param", "sizes=100", code=13)
    verdict = report["plan"]["no_safe_setting"]
    assert report["profile"]["kills"] == 0 and "without an OOM kill" in verdict, verdict
    assert "one task, alloc.allocate," in verdict and "route alloc.allocate" in verdict.lower()
    assert "OOM-killed" not in verdict and "fixed variant" not in verdict
    assert "trial runs" not in report["stdout"] and "concurrency 0" not in report["stdout"]


def test_a_task_killed_every_time_has_no_exact_maximum_only_its_kill(oomlab, tmp_path):
    """Every task is the over-limit one: none returns, so no growth was measured; the profile says how
    many were killed and the RSS at the kill, not a 0 B maximum called exact."""
    args = ("alloc", "--memory", "256MiB", "--tasks", "1", "--param", "every=1")
    report = recommend(oomlab, tmp_path, *args, code=13)
    profile, stdout = report["profile"], report["stdout"]
    assert "(exact)" not in stdout and "max 0 B" not in stdout, stdout
    assert profile["marginal_peaks"] == [] and profile["killed_tasks"] == profile["tasks"] == 1, profile
    killed_at = format_size(profile["killed_task_rss_bytes"])
    assert f"none measured exactly (1 of 1 task(s) OOM-killed, alloc.allocate at {killed_at} RSS)" in stdout, stdout


@pytest.mark.parametrize(
    "args, phrase",
    [
        (["alloc", "--memory", "256MiB", "--margin", "95%"], "--margin must be between"),
        (["alloc", "--memory", "lots"], "'lots' is not a memory size"),
        (["nope", "--memory", "256MiB"], "unknown scenario 'nope'"),
    ],
)
def test_recommend_bad_input(oomlab, tmp_path, args, phrase):
    result = oomlab("recommend", *args, "--results", str(tmp_path))
    assert result.code == 2 and phrase in result.stderr and "Traceback" not in result.stderr


def test_a_leaks_recycling_plan_holds_under_load_with_its_start_up_counted(oomlab, tmp_path):
    # `leak` (16 MiB per task, recycled after every task) at 256 MiB: one child alone measured 14.5 MiB
    # private after the fork, but 4 children starting together took 23 MiB each (the main process's
    # gc.collect before each fork). Planned on the one child, 5 or more children were planned, and
    # 8 and 11 were OOM-killed during start-up; the plan recycles after every task, so the proof's 3 s at
    # 10/s replace every child many times over
    result = oomlab(
        "recommend",
        "leak",
        "--rate",
        "10/s",
        "--memory",
        "256MiB",
        "--pools",
        "prefork",
        "--max-concurrency",
        "6",
        "--measure-seconds",
        "2s",
        "--prove-seconds",
        "3s",
        "--results",
        str(tmp_path),
        timeout=600,
    )
    assert result.code == 0, result.stderr
    with open(result.stdout.strip().splitlines()[-1]) as handle:
        report = json.load(handle)
    (profile,) = report["profiles"].values()
    startup = profile["startup"]
    assert startup["children"] >= 2 and startup["per_child_bytes"] > profile["child_idle_uss_bytes"]
    proof = report["proof"]
    setting = proof["setting"]
    assert setting["kills"] == 0 and setting["status"] == "complete", proof["verdicts"]
    assert setting["recycled"] >= report["choice"]["candidate"]["concurrency"], setting  # every child replaced
    # no worker lost: the proof's run, or its fleet's (a plan that needs replicas is proven as a fleet)
    if os.path.exists(os.path.join(setting["run_dir"], "run.json")):
        kills = load_run(setting["run_dir"]).kills
    else:
        kills = load_fleet(setting["run_dir"]).kills
    assert not [k for k in kills if k.role == "main"], kills
    # the step up is killed, or held and is reported as conservative (with its room in figures)
    assert proof["step_up_killed"] or ("conservative" in result.stdout and proof["step_up_room_bytes"] > 0)
