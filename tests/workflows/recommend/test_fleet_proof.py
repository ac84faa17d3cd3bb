"""`recommend --rate` proves the fleet it hands over by running it: the plan's replicas (as many as this
machine holds, and it says so), each a real worker under `oomlab agent --memory LIMIT --events STREAM` in
a memory cgroup of its own, a private Redis as broker and stream, the fleet controller sending the rate;
the verdict reads fleet.json. A fleet killed under load refutes the plan like one replica does."""

from __future__ import annotations

import json
import os

import pytest
from oomlab.config.options import RunOptions, resolve
from oomlab.config.scenario import load_scenario
from oomlab.record.fleet import load_fleet
from oomlab.report.capacity import proof_lines
from oomlab.workflows.recommend.fleet_proof import fleet_scale, run_fleet
from oomlab.workflows.recommend.load_proof import LoadProof, memory_held, refuted_by_oom

from tests.workflows.recommend.test_capacity_target_runs import handover

MIB = 2**20


def test_the_fleet_is_scaled_to_the_machine_and_says_so():
    small = fleet_scale(6, "prefork", 2, MIB, cores=3)  # 3 cores, 2 processes a core, 2 children a replica
    assert (small.planned, small.proved, small.by_cores) == (6, 3, 3) and small.scaled
    assert small.share(12.0) == 6.0
    assert small.sentence(12.0, MIB).startswith("proved 3 of 6 replicas at 3/6 of the rate (6/s of 12/s): ")
    assert "3 core(s) give 3 (2 worker processes a core)" in small.sentence(12.0, MIB)
    threads = fleet_scale(2, "threads", 8, MIB, cores=1)  # one process a replica, whatever its threads
    assert threads.proved == 2 and not threads.scaled
    assert threads.sentence(5.0, MIB) == "proved 2 of 2 replicas at the whole rate (5/s)"
    huge = fleet_scale(4, "prefork", 1, 2**50, cores=64)  # no machine here has 4 PiB: memory bounds it
    assert huge.proved == huge.by_memory == 1


@pytest.mark.integration
def test_a_fleet_killed_under_load_refutes_the_plan(tmp_path):
    # two real replicas of alloc at 200 MiB, one task in two asking for 1.25 x the limit: killed there
    scenario = load_scenario("alloc")
    config = resolve(
        scenario,
        RunOptions(memory="200MiB", concurrency=1, results_dir=str(tmp_path), params={"every": "2", "hold": "0.2"}),
    )
    scale = fleet_scale(4, "prefork", 1, config.memory_bytes, cores=1)  # as if on one core: 2 of 4
    assert scale.proved == 2
    said: list[str] = []
    run, fleet = run_fleet(scenario, config, scale, 8.0, 2.0, said.append)
    record = load_fleet(run.run_dir)
    assert [r.name for r in record.replicas] == ["r1", "r2"] and record.missing == 0
    assert run.kills == len(record.kills) >= 1 and record.figures.killed >= 1, said
    assert sum(r.killed for r in fleet.replicas) == record.figures.killed
    assert run.asked_per_s == 4.0 and record.figures.asked_per_s == 4.0  # 2/4 of the 8/s
    # each kill on the replica whose own agent saw the kernel kill its pool child
    for kill in record.kills:
        with open(os.path.join(fleet.logs_dir, f"{kill.replica}.log")) as log:
            assert "killed by the kernel's OOM killer" in log.read()
    proof = LoadProof(run, None, per_replica_per_s=2.0, seconds=2.0, fleet=fleet)
    assert not memory_held(proof)
    why = refuted_by_oom(proof)
    assert why.startswith("the plan is refuted: its own proof at the chosen setting (2 replicas at 4/s for 2 s)"), why
    assert f"{run.kills} OOM kill(s)" in why and "no settings were handed over" in why
    lines = proof_lines(proof)
    assert lines[0].startswith("the fleet: proved 2 of 4 replicas at 2/4 of the rate (4/s of 8/s)"), lines
    assert any(line.strip().startswith("r1: ran") for line in lines), lines
    # nothing of the run's Redis left: its password in no file
    assert not os.path.exists(os.path.join(fleet.logs_dir, "redis.conf"))


@pytest.mark.integration
def test_recommend_rate_proves_the_plans_fleet_by_running_it(oomlab, tmp_path):
    # every task the heavy kind (48 MiB for 0.2 s), one child a replica: 12 tasks/s need about three
    result = oomlab(
        "recommend", "capacity_mix", "--rate", "12/s", "--memory", "256MiB", "--pools", "prefork",
        "--max-concurrency", "1", "--measure-seconds", "2s", "--prove-seconds", "3s", "--param", "heavy_every=1",
        "--tasks", "6", "--results", str(tmp_path), timeout=600,
    )  # fmt: skip
    assert result.code == 0, f"{result.stdout}\n{result.stderr}"
    path = result.stdout.strip().splitlines()[-1]
    with open(path) as handle:
        report = json.load(handle)
    choice, proof = report["choice"], report["proof"]
    planned = choice["replicas"]
    fleet = proof["fleet"]
    assert fleet and planned > 1, result.stdout
    scale = fleet["scale"]
    assert scale["planned"] == planned and scale["proved"] == min(planned, scale["by_cores"], scale["by_memory"])
    assert fleet["sentence"].startswith(f"proved {scale['proved']} of {planned} replicas at ")
    assert fleet["sentence"] in result.stdout  # the console says what was proved of the plan
    assert len(fleet["replicas"]) == scale["proved"] and not fleet["missing"] and not fleet["lost"]
    assert sum(r["tasks_run"] for r in fleet["replicas"]) >= 1 and all(r["killed"] == 0 for r in fleet["replicas"])
    assert proof["setting"]["kills"] == 0 and proof["setting"]["achieved_per_s"], result.stdout
    fleet_record = load_fleet(fleet["fleet_dir"])  # the verdict's source, a fleet.json of its own
    assert len(fleet_record.replicas) == scale["proved"] and fleet_record.figures.killed == 0
    assert fleet_record.figures.asked_per_s == pytest.approx(12 * scale["proved"] / planned, abs=0.01)
    with open(path.removesuffix(".json") + ".html") as handle:
        page = handle.read()
    assert "the fleet: proved " in page and "proof-replicas" in page
    # a fleet proved in part is handed over marked so (each file's first line, the JSON, the page)
    marks = report.get("handover_marks") or {}
    if scale["proved"] < planned:
        assert fleet["sentence"] in marks["one_class"], marks
        with open(handover(report, "one_class", "k8s.yaml")) as handle:
            assert handle.readline().startswith(f"# {fleet['sentence'][:40]}")
    else:
        assert "replicas at" not in marks.get("one_class", ""), marks


@pytest.mark.integration
def test_a_fleet_that_cannot_start_under_its_limit_refutes_the_plan(tmp_path):
    # 32 MiB (the least the agent takes) holds no Celery worker: each replica's main process is OOM-killed at
    # start, none says hello
    scenario = load_scenario("alloc")
    options = RunOptions(memory="32MiB", concurrency=1, results_dir=str(tmp_path), start_timeout=10)
    config = resolve(scenario, options)
    scale = fleet_scale(2, "prefork", 1, config.memory_bytes, cores=1)
    said: list[str] = []
    run, fleet = run_fleet(scenario, config, scale, 4.0, 2.0, said.append)
    assert run.status == "worker_start_failed" and fleet.missing == 2, said
    assert any(line.startswith("the fleet did not start: no replica said hello") for line in said), said
    proof = LoadProof(run, None, per_replica_per_s=2.0, seconds=2.0, fleet=fleet)
    why = refuted_by_oom(proof)
    assert why.startswith("the plan is refuted: its own proof at the chosen setting (2 replicas at 4/s for 2 s)")
    assert "the worker did not stay up (worker_start_failed)" in why, why
    for name in ("r1", "r2"):  # each agent saw its worker's main process killed
        with open(os.path.join(fleet.logs_dir, f"{name}.log")) as log:
            assert "main process" in log.read()
