"""The capacity hand-over as files: a celeryconfig Celery itself loads (task_routes, each class's worker
settings), a compose file and Kubernetes Deployments that YAML parses, one service or Deployment per
class with its replicas, memory limit, pool and concurrency, and the cgroup v2 memory.oom.group note."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import replace

import pytest
import yaml
from celery import Celery
from oomlab.config.options import RunConfig
from oomlab.report.capacity import split_lines
from oomlab.workflows.recommend.fleet import Candidate, fleet_row
from oomlab.workflows.recommend.handover import (
    AGENT_ENTRYPOINT,
    OOM_GROUP_NOTE,
    ClassSetting,
    handover_files,
    row_setting,
    split_settings,
    worker_command,
)
from oomlab.workflows.recommend.load_proof import LoadProof, not_handed_over, with_recycling
from oomlab.workflows.recommend.recycling import setting_recycling
from oomlab.workflows.recommend.split import Demand, kind_costs, split_plan
from oomlab.workflows.recommend.split_proof import ClassProof, split_not_proven
from oomlab.workflows.recommend.throughput import LoadResult, at_setting

from tests.workflows.recommend.test_capacity import profile
from tests.workflows.recommend.test_capacity_target import _tasks

MIB = 1024 * 1024


@pytest.fixture
def split():
    return split_plan(kind_costs(_tasks(19, 1)), {440 * MIB: profile()}, Demand(100.0, 0.0, 0.2, 8))


@pytest.fixture
def files(split) -> dict[str, str]:
    return handover_files("capacity_mix", split_settings(split), "100 tasks/s, split queues")


def load_celeryconfig(path, monkeypatch, worker_class: str | None) -> Celery:
    """The file as a user's app reads it: config_from_object on the imported module."""
    if worker_class is None:
        monkeypatch.delenv("WORKER_CLASS", raising=False)
    else:
        monkeypatch.setenv("WORKER_CLASS", worker_class)
    spec = importlib.util.spec_from_file_location("celeryconfig", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app = Celery("proj", set_as_current=False)
    app.config_from_object(module)
    return app


def test_the_celeryconfig_routes_each_kind_to_its_class_and_carries_each_classs_settings(
    split, files, tmp_path, monkeypatch
):
    path = tmp_path / "celeryconfig.py"
    path.write_text(files["celeryconfig.py"])
    small, big = split.two_classes
    for worker_class in (small, big):
        app = load_celeryconfig(path, monkeypatch, worker_class.queue)
        # Celery's own router sends each kind to its class's queue
        assert app.amqp.router.route({}, "mix.io")["queue"].name == "small"
        assert app.amqp.router.route({}, "mix.heavy")["queue"].name == "big"
        assert app.conf.worker_pool == "prefork" and app.conf.worker_concurrency == worker_class.concurrency
        assert app.conf.worker_max_memory_per_child == worker_class.max_memory_per_child_kib
        assert worker_class.max_memory_per_child_kib
    assert small.concurrency != big.concurrency  # so the two loads above tell the classes apart
    assert load_celeryconfig(path, monkeypatch, None).conf.worker_concurrency == small.concurrency
    # the worker command of each class is in the file, as it is on the command line
    for worker_class in split.two_classes:
        command = " ".join(worker_command(split_settings(split)[split.two_classes.index(worker_class)]))
        assert f"#   {command}" in files["celeryconfig.py"]
        assert f"--queues={worker_class.queue}" in command and f"--concurrency={worker_class.concurrency}" in command
        assert f"--max-memory-per-child={worker_class.max_memory_per_child_kib}" in command


def test_compose_has_one_service_per_class_with_its_own_mem_limit_and_replicas(split, files):
    services = yaml.safe_load(files["compose.yaml"])["services"]
    assert sorted(services) == ["big", "small"]
    for worker_class in split.two_classes:
        service = services[worker_class.queue]
        assert service["mem_limit"] == service["memswap_limit"] == f"{worker_class.limit_bytes // MIB}m"
        assert service["deploy"]["replicas"] == worker_class.replicas
        assert service["environment"] == {"WORKER_CLASS": worker_class.queue, "OOMLAB_EVENTS": "${OOMLAB_EVENTS:-}"}
        assert service["entrypoint"] == [part.replace("$", "$$") for part in AGENT_ENTRYPOINT]
        assert f"--queues={worker_class.queue}" in service["command"] and "--pool=prefork" in service["command"]


def test_kubernetes_has_a_deployment_per_class_with_replicas_requests_limits_and_the_pool(split, files):
    text = files["k8s.yaml"]
    deployments = [doc for doc in yaml.safe_load_all(text) if doc]
    assert [d["kind"] for d in deployments] == ["Deployment", "Deployment"]
    for deployment, worker_class in zip(deployments, split.two_classes, strict=True):
        assert deployment["metadata"]["name"] == f"capacity-mix-{worker_class.queue}"  # a DNS-1123 name
        spec = deployment["spec"]
        assert spec["replicas"] == worker_class.replicas
        assert spec["selector"]["matchLabels"] == spec["template"]["metadata"]["labels"]
        (container,) = spec["template"]["spec"]["containers"]
        memory = f"{worker_class.limit_bytes // MIB}Mi"
        assert container["resources"] == {"requests": {"memory": memory}, "limits": {"memory": memory}}
        assert container["command"] == AGENT_ENTRYPOINT  # the agent, with the worker command as its arguments
        command = container["args"]
        assert command[:4] == ["celery", "-A", "APP", "worker"]
        assert "--pool=prefork" in command and f"--concurrency={worker_class.concurrency}" in command
        assert f"--queues={worker_class.queue}" in command
        assert container["env"] == [
            {"name": "WORKER_CLASS", "value": worker_class.queue},
            {"name": "OOMLAB_EVENTS", "value": ""},
        ]
    assert text.rstrip().endswith(OOM_GROUP_NOTE) and "memory.oom.group" in text


def test_one_worker_class_gets_the_chosen_rows_pool_and_prefork_its_recycling():
    row = fleet_row(Candidate(300 * MIB, "threads", 5, 20.0), 30.0, 0.2, None)
    threads = row_setting(row, profile(), 0.0)
    assert (threads.replicas, threads.pool, threads.concurrency, threads.recycling) == (2, "threads", 5, {})
    prefork = row_setting(fleet_row(Candidate(300 * MIB, "prefork", 4, 16.0), 30.0, 0.2, None), profile(), 0.0)
    assert prefork.replicas == math.ceil(36 / 16) and prefork.recycling["worker_max_memory_per_child"] > 0
    files = handover_files("mix", [threads], "30 tasks/s")
    app_conf = files["celeryconfig.py"]
    assert "task_routes" not in app_conf and 'task_default_queue = "celery"' in app_conf
    (deployment,) = [d for d in yaml.safe_load_all(files["k8s.yaml"]) if d]
    assert (
        deployment["spec"]["replicas"] == 2
        and "--pool=threads" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    assert list(yaml.safe_load(files["compose.yaml"])["services"]) == ["worker"]


def test_names_from_the_user_are_quoted_not_interpreted():
    odd = ClassSetting("a: b", "q #1", 1, 256 * MIB, "prefork", 2, kinds=("x'y: z\nimport os; os.abort()",))
    files = handover_files("we ird_Name\nservices:", [odd], "test")
    (service,) = yaml.safe_load(files["compose.yaml"])["services"].values()
    assert "--queues=q #1" in service["command"] and service["environment"]["WORKER_CLASS"] == "a: b"
    (deployment,) = [d for d in yaml.safe_load_all(files["k8s.yaml"]) if d]
    assert deployment["metadata"]["name"] == "we-ird-name-services-a-b"
    namespace: dict = {}
    exec(compile(files["celeryconfig.py"], "celeryconfig.py", "exec"), namespace)  # no line of a name runs
    assert namespace["task_routes"] == {"x'y: z\nimport os; os.abort()": {"queue": "q #1"}}


def test_the_hand_over_carries_the_recycling_the_proof_ran_with_at_a_capped_concurrency():
    """A row below its safe concurrency (capped by --max-concurrency): each child's share is the limit's
    at 2 children, not at the 8 that fit; the proving run and the hand-over must say the same."""
    row = fleet_row(Candidate(600 * MIB, "prefork", 2, 8.0, safe_concurrency=8), 10.0, 0.2, None)
    proven = with_recycling(
        at_setting(RunConfig("mix", "600MiB", 600 * MIB, 1), 600 * MIB, "prefork", 2), profile(), 0.1
    )
    handed = row_setting(row, profile(), 0.1)
    assert handed.recycling == proven.celery_conf and handed.recycling["worker_max_memory_per_child"]
    at_safe = setting_recycling(profile(), 600 * MIB, 0.1, "prefork", 8)
    assert handed.recycling["worker_max_memory_per_child"] > at_safe["worker_max_memory_per_child"]
    assert f"--max-memory-per-child={proven.celery_conf['worker_max_memory_per_child']}" in worker_command(handed)


def _class_proof(worker_class, held: bool, why: str = "") -> ClassProof:
    run = LoadResult("r", "complete", 5.0, 4.0, 5.0, 0.1, 0 if held else 1, 0, 100 * MIB)
    return ClassProof(
        worker_class.queue, worker_class.kinds, worker_class.limit_bytes, "prefork", 2, run, held=held, why=why
    )


def test_a_split_that_failed_its_proofs_is_withheld_and_one_not_run_is_handed_over_marked(split):
    small, big = split.two_classes
    failed = [_class_proof(small, False, "1 OOM kill(s)"), _class_proof(big, True)]
    assert split_not_proven(failed, True) == "NOT proven: queue small: 1 OOM kill(s)"
    assert split_not_proven([_class_proof(small, True), _class_proof(big, True)], True) == ""
    assert split_not_proven([], False) == "not proven (--no-prove)"
    lines = split_lines(split, failed)
    assert lines[-1] == "two classes NOT proven (queue small: 1 OOM kill(s)): not handed over"
    assert not any("save" in line for line in lines)
    marked = handover_files("capacity_mix", split_settings(split), "100 tasks/s", "not proven (--no-prove)")
    for suffix, text in marked.items():
        assert text.startswith("# not proven (--no-prove)\n"), suffix
    yaml.safe_load(marked["compose.yaml"])
    exec(compile(marked["celeryconfig.py"], "celeryconfig.py", "exec"), {})


def test_the_hand_over_asks_for_the_cores_its_throughput_was_measured_with():
    row = fleet_row(Candidate(300 * MIB, "prefork", 4, 16.0, cores_usable=2), 30.0, 0.2, None)
    files = handover_files("mix", [row_setting(row, profile(), 0.0)], "30 tasks/s")
    (deployment,) = [d for d in yaml.safe_load_all(files["k8s.yaml"]) if d]
    resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"memory": "300Mi", "cpu": "2"}, "limits": {"memory": "300Mi", "cpu": "2"}}
    assert "throughput was measured with 2 core(s)" in files["k8s.yaml"]
    (service,) = yaml.safe_load(files["compose.yaml"])["services"].values()
    assert service["cpus"] == 2 and "measured with 2 core(s)" in files["compose.yaml"]
    unmeasured = handover_files(
        "mix", [row_setting(replace(row, candidate=replace(row.candidate, cores_usable=0)), profile(), 0.0)], "x"
    )
    assert "cpu" not in unmeasured["k8s.yaml"].split("resources:")[1] and "cpus" not in unmeasured["compose.yaml"]


def test_a_chosen_setting_whose_proof_under_load_failed_is_not_handed_over():
    run = LoadResult("r", "complete", 5.0, 4.0, 5.0, 0.1, 1, 0, 100 * MIB)
    failed = LoadProof(run, None, held=False, verdicts=["the setting did NOT hold: 1 OOM kill(s)"])
    assert not_handed_over(failed) == "the proof under load did NOT hold: the setting did NOT hold: 1 OOM kill(s)"
    assert not_handed_over(replace(failed, held=True)) == ""
    assert not_handed_over(None) == ""  # --no-prove: handed over, marked so
