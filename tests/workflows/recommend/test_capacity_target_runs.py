"""`oomlab recommend --rate` and `--concurrency` on the capacity_mix scenario, whose per-task cost is
known (an I/O-bound kind sleeping 0.2 s beside 4 MiB, a heavy kind of 48 MiB in one task of 20):
real workers under real limits, short load runs."""

from __future__ import annotations

import json
import math
import os

import pytest
import yaml

from tests.workflows.recommend.test_manifests import assert_valid

pytestmark = pytest.mark.integration

RATE = 20.0
HEADROOM = 0.2
RUN_TIME = 0.2  # both kinds sleep 0.2 s; touching their memory adds milliseconds
MEASURE_S = 2  # each throughput run's sending time


def recommend(oomlab, tmp_path, *args) -> dict:
    result = oomlab("recommend", "capacity_mix", *args, "--results", str(tmp_path), timeout=600)
    assert result.code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    with open(lines[-1]) as handle:
        report = json.load(handle)
    page = lines[-1].removesuffix(".json") + ".html"
    assert page in lines and os.path.isfile(page)  # its HTML page, beside it
    return report | {"stdout": result.stdout, "yaml": handover(report, "one_class", "k8s.yaml")}


def handover(report: dict, kind: str, suffix: str) -> str:
    """A hand-over file written beside the record (kind: one_class | split)."""
    (path,) = [p for p in report["handover"][kind] if p.endswith(f"-{suffix}")]
    assert os.path.isfile(path)
    return path


def test_a_fleet_for_a_rate_matches_the_arithmetic_and_holds_under_load(oomlab, tmp_path):
    # every task is the heavy kind (48 MiB for 0.2 s): one limit, two pools, two rows to choose from;
    # with one kind nothing dominates, so no split is planned or proven (the split test does that)
    report = recommend(
        oomlab,
        tmp_path,
        "--rate",
        f"{RATE:g}/s",
        "--memory",
        "256MiB",
        "--pools",
        "prefork,threads",
        "--max-concurrency",
        "4",
        "--measure-seconds",
        f"{MEASURE_S}s",
        "--prove-seconds",
        "3s",
        "--param",
        "heavy_every=1",
        "--tasks",
        "10",
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
        assert candidate["kills"] == 0 and candidate["measured_s"] == MEASURE_S
    assert len(report["rows"]) == 2 and choice["total_bytes"] == min(
        r["total_bytes"] for r in report["rows"] if r["safe"]
    )
    assert report["split"]["dominant"] is None and report["split_proofs"] == [], report["stdout"]
    # proven under load at the target rate per replica: no OOM kill
    proof = report["proof"]
    assert proof["setting"]["kills"] == 0 and proof["setting"]["achieved_per_s"], proof
    assert proof["step_up_concurrency"] == choice["candidate"]["safe_concurrency"] + 1
    with open(report["yaml"]) as handle:
        text = handle.read()
    assert f"replicas: {choice['replicas']}" in text and "memory.oom.group" in text
    assert_valid("the one-class hand-over `recommend --rate` wrote", [d for d in yaml.safe_load_all(text) if d])
    assert os.path.dirname(report["yaml"]) == str(tmp_path)


def _total(classes: list[dict]) -> int:
    return sum(c["replicas"] * c["limit_bytes"] for c in classes)


def test_a_dominant_heavy_task_gets_split_queues_each_class_proven_by_its_own_routed_run(oomlab, tmp_path):
    # one task in 20 needs 96 MiB, the rest 4 MiB (0.1 s): under 256 MiB one class fits one child, so
    # 20 tasks/s take three replicas; a small queue at concurrency 4 and a big queue at 1 take two
    report = recommend(
        oomlab,
        tmp_path,
        "--rate",
        "20/s",
        "--memory",
        "256MiB",
        "--pools",
        "prefork",
        "--max-concurrency",
        "4",
        "--measure-seconds",
        "2s",
        "--prove-seconds",
        "3s",
        "--param",
        "heavy_mib=96",
        "--param",
        "io_sleep=0.1",
    )
    split = report["split"]
    assert split["dominant"] == "capacity_mix.heavy" and "dominates the peak" in report["stdout"], split
    small, big = split["two_classes"]
    assert (small["queue"], small["kinds"]) == ("small", ["capacity_mix.io"])
    assert (big["queue"], big["kinds"]) == ("big", ["capacity_mix.heavy"])
    assert big["concurrency"] < small["concurrency"] == 4
    assert _total(split["two_classes"]) < _total(split["one_class"]), report["stdout"]
    # each class proven by its own run, beside the one-class plan
    proofs = {proof["queue"]: proof for proof in report["split_proofs"]}
    assert sorted(proofs) == ["big", "small"]
    for worker_class in (small, big):
        proof = proofs[worker_class["queue"]]
        assert proof["held"], (proof["why"], report["stdout"])
        assert proof["run"]["kills"] == 0 and proof["run"]["status"] == "complete"
        assert (proof["limit_bytes"], proof["concurrency"]) == (
            worker_class["limit_bytes"],
            worker_class["concurrency"],
        )
        assert proof["run"]["asked_per_s"] == worker_class["per_replica_per_s"] > 0
        # only its own kinds reached it, every one finished, and its worker consumed only its queue
        assert sorted(proof["sent"]) == worker_class["kinds"] and proof["succeeded"] == proof["sent"]
        with open(os.path.join(proof["run"]["run_dir"], "run.json")) as handle:
            run = json.load(handle)
        assert run["config"]["worker_class"] == worker_class["queue"] and run["config"]["pool"] == "prefork"
        assert run["config"]["memory_bytes"] == worker_class["limit_bytes"]
        assert run["worker"]["queue"] == proof["consumed"] and proof["consumed"].endswith("." + worker_class["queue"])
        routes = run["worker"]["celery_conf"]["task_routes"]
        assert {task: route["queue"].rsplit(".", 1)[-1] for task, route in routes.items()} == {
            "capacity_mix.io": "small",
            "capacity_mix.heavy": "big",
        }
    assert "two classes save 256.0 MiB (each class proven by its own run)" in report["stdout"]
    # handed over per class: YAML that parses, one compose service and one Deployment per class
    with open(handover(report, "split", "compose.yaml")) as handle:
        services = yaml.safe_load(handle)["services"]
    assert {name: s["mem_limit"] for name, s in services.items()} == {"small": "256m", "big": "256m"}
    with open(handover(report, "split", "k8s.yaml")) as handle:
        deployments = [d for d in yaml.safe_load_all(handle) if d]
    assert [d["spec"]["replicas"] for d in deployments] == [small["replicas"], big["replicas"]]
    assert_valid("the split hand-over `recommend --rate` wrote", deployments)


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
    assert report["verdict"].startswith("proven: ") and report["verdict"] in report["stdout"]
    with open(report["yaml"]) as handle:
        written = [d for d in yaml.safe_load_all(handle) if d]
    assert_valid("the hand-over `recommend --concurrency` wrote", written)


@pytest.mark.parametrize(
    "args, phrase",
    [
        (["--rate", "fast"], "--rate takes a positive rate"),
        (["--rate", "5/s", "--queue-wait-p95", "0s"], "--queue-wait-p95 takes a positive duration"),
        (["--rate", "5/s", "--pools", "forks"], "--pools takes"),
        (["--rate", "5/s", "--headroom", "lots"], "--headroom takes a percentage"),
        (["--memory", "256MiB", "--memory", "384MiB"], "recommend takes one --memory"),
        (["--concurrency", "0"], "--concurrency must be at least 1"),
    ],
)
def test_capacity_bad_input(oomlab, tmp_path, args, phrase):
    result = oomlab("recommend", "capacity_mix", *args, "--results", str(tmp_path))
    assert result.code == 2 and phrase in result.stderr and "Traceback" not in result.stderr
