"""`oomlab recommend --rate` and `--concurrency` on the capacity_mix scenario, whose per-task cost is
known (an I/O-bound kind sleeping 0.2 s beside 4 MiB, a heavy kind of 48 MiB in one task of 20):
real workers under real limits, short load runs."""

from __future__ import annotations

import json
import math
import os

import pytest

pytestmark = pytest.mark.integration

RATE = 20.0
HEADROOM = 0.2
RUN_TIME = 0.2  # both kinds sleep 0.2 s; touching their memory adds milliseconds


def recommend(oomlab, tmp_path, *args) -> dict:
    result = oomlab("recommend", "capacity_mix", *args, "--results", str(tmp_path), timeout=600)
    assert result.code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    with open(lines[-1]) as handle:
        return json.load(handle) | {"stdout": result.stdout, "yaml": lines[-2]}


def test_a_fleet_for_a_rate_matches_the_arithmetic_splits_the_heavy_kind_and_holds_under_load(oomlab, tmp_path):
    report = recommend(
        oomlab,
        tmp_path,
        "--rate",
        f"{RATE:g}/s",
        "--memory",
        "256MiB",
        "--memory",
        "384MiB",
        "--pools",
        "prefork,threads",
        "--max-concurrency",
        "4",
        "--measure-seconds",
        "4s",
        "--prove-seconds",
        "8s",
    )
    choice = report["choice"]
    assert choice and choice["safe"], report["stdout"]
    for row in report["rows"]:
        candidate = row["candidate"]
        if not row["safe"]:
            continue
        # one replica's slots finish concurrency / run time tasks per second
        arithmetic = math.ceil(RATE * (1 + HEADROOM) / (candidate["concurrency"] / RUN_TIME))
        assert abs(row["replicas"] - arithmetic) <= 1, (row, arithmetic)
        assert candidate["kills"] == 0 and candidate["measured_s"] == 4
    assert choice["total_bytes"] == min(r["total_bytes"] for r in report["rows"] if r["safe"])
    # 5 % of the tasks need 12x the memory of the rest: two queues cost less than one class
    split = report["split"]
    assert split["dominant"] == "capacity_mix.heavy", split
    one = sum(c["replicas"] * c["limit_bytes"] for c in split["one_class"])
    two = sum(c["replicas"] * c["limit_bytes"] for c in split["two_classes"])
    assert two <= one and "dominates the peak" in report["stdout"]
    # proven under load at the target rate per replica: no OOM kill
    proof = report["proof"]
    assert proof["setting"]["kills"] == 0 and proof["setting"]["achieved_per_s"], proof
    assert proof["step_up_concurrency"] == choice["candidate"]["safe_concurrency"] + 1
    with open(report["yaml"]) as handle:
        yaml = handle.read()
    assert f"replicas: {choice['replicas']}" in yaml and "memory.oom.group" in yaml
    assert os.path.dirname(report["yaml"]) == str(tmp_path)


def test_the_limit_a_concurrency_needs_holds_and_the_one_below_is_killed(oomlab, tmp_path):
    # every task is heavy and holds its 48 MiB for a second, so two children overlap at their peaks
    report = recommend(
        oomlab,
        tmp_path,
        "--concurrency",
        "2",
        "--param",
        "heavy_every=1",
        "--param",
        "heavy_hold=1",
        "--tasks",
        "4",
        "--tasks-per-child",
        "2",
    )
    assert report["limit_bytes"] > report["below_bytes"]
    assert not report["held"]["killed"], report["stdout"]
    assert report["below"]["killed"], report["stdout"]


@pytest.mark.parametrize(
    "args, phrase",
    [
        (["--rate", "fast"], "--rate takes a rate"),
        (["--rate", "5/s", "--pools", "forks"], "--pools takes"),
        (["--rate", "5/s", "--headroom", "lots"], "--headroom takes a percentage"),
        (["--memory", "256MiB", "--memory", "384MiB"], "recommend takes one --memory"),
        (["--concurrency", "0"], "--concurrency must be at least 1"),
    ],
)
def test_capacity_bad_input(oomlab, tmp_path, args, phrase):
    result = oomlab("recommend", "capacity_mix", *args, "--results", str(tmp_path))
    assert result.code == 2 and phrase in result.stderr and "Traceback" not in result.stderr
