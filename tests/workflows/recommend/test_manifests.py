"""Every manifest the project ships or generates, validated offline (no cluster can run here).

Kubernetes: each object is checked against the API's own OpenAPI schema of a pinned Kubernetes version
(kubernetes-validate, strict: a field the API does not know is an error, an annotation that is not a
string too), then for what a schema cannot say: the name is a DNS-1123 label, the selector matches the
pod's labels, the scrape annotations name the agent's container port. The generated ones are what
`oomlab recommend` hands over (one worker class, split queues, `--concurrency`'s one replica, a plan
marked not proven, names from the user); the shipped ones are every Kubernetes YAML in the repository,
files and the docs' ```yaml blocks alike. Compose: every compose file, the repository's and the
generated ones, read by Compose itself (`docker-compose config -q`). The agent's entrypoint, the one
shell line that every form shares, is run by a real `sh`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap

import pytest
import yaml
from kubernetes_validate import utils as kubernetes_validate
from oomlab.workflows.recommend.fleet import Candidate, fleet_row
from oomlab.workflows.recommend.handover import (
    AGENT_ENTRYPOINT,
    AGENT_PORT,
    EVENTS_ENV,
    GRACE_S,
    ClassSetting,
    handover_files,
    row_setting,
    split_settings,
    with_app,
)
from oomlab.workflows.recommend.split import Demand, kind_costs, split_plan

from tests.worker.docker.test_compose import compose_command
from tests.workflows.recommend.test_capacity import profile
from tests.workflows.recommend.test_capacity_target import _tasks

KUBERNETES_VERSION = "1.30.0"  # the API the manifests are held to: a version every supported cloud still runs
MIB = 1024 * 1024
REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
APP = "oomlab.scenarios.capacity_mix:app"


def generated() -> dict[str, dict[str, str]]:
    """The hand-overs, made by the code `recommend` runs: name -> {suffix: text}."""
    one_class = row_setting(
        fleet_row(Candidate(300 * MIB, "prefork", 4, 16.0, cores_usable=2), 30.0, 0.2, None), profile(), 0.1
    )
    split = split_plan(kind_costs(_tasks(19, 1)), {440 * MIB: profile()}, Demand(100.0, 0.0, 0.2, 8))
    assert split.dominant and len(split.two_classes) == 2
    concurrency = ClassSetting("worker", "celery", 1, 200 * MIB, "prefork", 3, {"worker_max_memory_per_child": 90000})
    odd = ClassSetting("a: $b", "q #1", 2, 256 * MIB, "threads", 8, kinds=("x'y: z",))
    return {
        "one class": handover_files("capacity_mix", with_app([one_class], APP), "30 tasks/s, one worker class"),
        "split": handover_files("capacity_mix", with_app(split_settings(split), APP), "100 tasks/s, split queues"),
        "--concurrency": handover_files("capacity_mix", with_app([concurrency], APP), "--concurrency 3"),
        "not proven": handover_files("capacity_mix", [one_class], "30 tasks/s", "not proven (--no-prove)"),
        "odd names": handover_files("we ird_Name\nservices:", [odd], "test"),
    }


def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPOSITORY, capture_output=True, text=True, check=True)
    return [os.path.join(REPOSITORY, path) for path in listed.stdout.split()]


def shipped_kubernetes() -> dict[str, list[dict]]:
    """Every Kubernetes object in the repository: YAML files, and ```yaml blocks in Markdown."""
    found: dict[str, list[dict]] = {}
    for path in tracked_files():
        where = os.path.relpath(path, REPOSITORY)
        if path.endswith((".yaml", ".yml")):
            with open(path) as handle:
                texts = [handle.read()]
        elif path.endswith(".md"):
            with open(path) as handle:
                # a block inside a list item is indented as the item is
                texts = [textwrap.dedent(block) for block in re.findall(r"```yaml\n(.*?)```", handle.read(), re.DOTALL)]
        else:
            continue
        for index, text in enumerate(texts):
            if "apiVersion:" not in text:
                continue
            objects = [doc for doc in yaml.safe_load_all(text) if doc]
            if any("kind" in doc for doc in objects):
                found[f"{where}#{index}"] = objects
    return found


def assert_valid(name: str, objects: list[dict]) -> None:
    assert objects, f"{name}: no object"
    for obj in objects:
        what = f"{name}: {obj.get('kind')} {obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = "/".join(str(part) for part in error.path)
            raise AssertionError(
                f"{what} is not valid Kubernetes {KUBERNETES_VERSION}: {error.message} at {path}"
            ) from None
        assert DNS_LABEL.match(obj["metadata"]["name"]), what
        if obj["kind"] == "Deployment":
            assert_deployment_sane(what, obj)


def assert_deployment_sane(what: str, deployment: dict) -> None:
    spec, template = deployment["spec"], deployment["spec"]["template"]
    assert spec["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items(), what
    annotations = template["metadata"].get("annotations", {})
    assert annotations.get("prometheus.io/scrape") == "true", what
    ports = {p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
    assert int(annotations["prometheus.io/port"]) in ports, what
    for container in template["spec"]["containers"]:
        named = {p.get("name") for p in container.get("ports", [])}
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            port = container.get(probe, {}).get("tcpSocket", {}).get("port")
            assert port is None or isinstance(port, int) or port in named, f"{what}: {probe} port {port}"
        memory = container["resources"]["limits"]["memory"]
        assert container["resources"]["requests"]["memory"] == memory, what  # Guaranteed QoS


def test_the_pinned_kubernetes_version_is_one_the_validator_knows():
    known = {version.rsplit(".", 1)[0] for version in kubernetes_validate.all_versions()}
    assert KUBERNETES_VERSION.rsplit(".", 1)[0] in known, f"kubernetes-validate has no schema for {KUBERNETES_VERSION}"


@pytest.mark.parametrize("name", list(generated()))
def test_every_generated_kubernetes_hand_over_is_valid_kubernetes(name):
    text = generated()[name]["k8s.yaml"]
    objects = [doc for doc in yaml.safe_load_all(text) if doc]
    assert_valid(name, objects)
    for deployment in objects:
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["command"] == AGENT_ENTRYPOINT and container["args"][:2] == ["celery", "-A"]
        assert {"name": "metrics", "containerPort": AGENT_PORT} in container["ports"]
        assert {"name": EVENTS_ENV, "value": ""} in container["env"]
        assert pod["terminationGracePeriodSeconds"] == GRACE_S
        assert container["readinessProbe"]["tcpSocket"]["port"] == "metrics" and "livenessProbe" not in container


def test_the_split_hand_over_is_one_deployment_per_class():
    objects = [doc for doc in yaml.safe_load_all(generated()["split"]["k8s.yaml"]) if doc]
    assert [d["metadata"]["name"] for d in objects] == ["capacity-mix-small", "capacity-mix-big"]


def test_a_broken_manifest_is_refused_so_the_check_checks():
    (deployment,) = [doc for doc in yaml.safe_load_all(generated()["one class"]["k8s.yaml"]) if doc]
    deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] = AGENT_PORT  # not a string
    with pytest.raises(AssertionError, match="is not of type 'string'"):
        assert_valid("broken", [deployment])
    deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] = str(AGENT_PORT)
    deployment["spec"]["template"]["spec"]["containers"][0]["memoryLimit"] = "1Gi"  # no such field
    with pytest.raises(AssertionError, match="'memoryLimit' was unexpected"):
        assert_valid("broken", [deployment])


def test_every_kubernetes_manifest_the_repository_ships_is_valid_kubernetes():
    shipped = shipped_kubernetes()
    assert any(name.startswith("docs/kubernetes.md") for name in shipped), sorted(shipped)
    for name, objects in shipped.items():
        assert_valid(name, objects)
    # the page's example is the hand-over's shape: the same entrypoint, port and environment
    (example,) = [o for name, objects in shipped.items() for o in objects if o["kind"] == "Deployment"]
    (container,) = example["spec"]["template"]["spec"]["containers"]
    assert container["command"] == AGENT_ENTRYPOINT and {"name": EVENTS_ENV, "value": ""} in container["env"]
    assert example["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == GRACE_S


def compose_config(*files: str) -> subprocess.CompletedProcess:
    command = [*compose_command(), "--project-directory", REPOSITORY]
    for path in files:
        command += ["-f", path]
    env = {key: value for key, value in os.environ.items() if not key.startswith("OOMLAB_")}  # the files' defaults
    return subprocess.run([*command, "config", "-q"], capture_output=True, text=True, env=env, timeout=60)


def test_every_compose_file_the_repository_ships_is_read_by_compose():
    shipped = [p for p in tracked_files() if os.path.basename(p).startswith("docker-compose")]
    assert {os.path.basename(p) for p in shipped} >= {"docker-compose.yml", "docker-compose.fleet.yml"}
    for path in shipped:
        checked = compose_config(path)
        assert checked.returncode == 0, f"{path}: {checked.stderr}"
    overrides = [p for p in tracked_files() if p.startswith(os.path.join(REPOSITORY, "tests", "compose") + os.sep)]
    for path in (p for p in overrides if p.endswith((".yml", ".yaml"))):  # each over the stack it changes
        checked = compose_config(os.path.join(REPOSITORY, "docker-compose.yml"), path)
        assert checked.returncode == 0, f"{path}: {checked.stderr}"


@pytest.mark.parametrize("name", list(generated()))
def test_every_generated_compose_hand_over_is_read_by_compose(name, tmp_path):
    path = tmp_path / "compose.yaml"
    path.write_text(generated()[name]["compose.yaml"])
    checked = compose_config(str(path))
    assert checked.returncode == 0, checked.stderr


def entrypoint_argv(entrypoint: list[str], env: dict[str, str], tmp_path) -> list[str]:
    """What the entrypoint execs, run by a real sh with `oomlab` on PATH a program that prints its argv."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "oomlab").write_text("#!/usr/bin/env python3\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    (bin_dir / "oomlab").chmod(0o755)
    done = subprocess.run(
        [*entrypoint, "celery", "-A", "proj", "worker", "-Q", "a b"],
        capture_output=True,
        text=True,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", **env},
        check=True,
    )
    return json.loads(done.stdout)


def test_the_agent_entrypoint_adds_events_only_when_a_stream_is_given(tmp_path):
    worker = ["celery", "-A", "proj", "worker", "-Q", "a b"]
    plain = ["agent", "--metrics", f"0.0.0.0:{AGENT_PORT}", "--", *worker]
    assert entrypoint_argv(AGENT_ENTRYPOINT, {}, tmp_path) == plain
    assert entrypoint_argv(AGENT_ENTRYPOINT, {EVENTS_ENV: ""}, tmp_path) == plain
    stream = "redis://redis.staging:6379/0/oomlab-run 1"  # one argument, spaces and all
    assert entrypoint_argv(AGENT_ENTRYPOINT, {EVENTS_ENV: stream}, tmp_path) == [
        "agent",
        "--metrics",
        f"0.0.0.0:{AGENT_PORT}",
        "--events-from-env",
        EVENTS_ENV,  # the URL (a password in it) stays in the environment, off the command line
        "--",
        *worker,
    ]


def test_the_dockerfile_and_the_fleet_compose_file_share_the_hand_overs_entrypoint():
    with open(os.path.join(REPOSITORY, "workers", "Dockerfile")) as handle:
        stages = handle.read().split("\nFROM ")
    (agent_stage,) = [stage for stage in stages if stage.startswith("lab AS agent")]
    (line,) = [line for line in agent_stage.splitlines() if line.startswith("ENTRYPOINT ")]
    assert json.loads(line.removeprefix("ENTRYPOINT ")) == AGENT_ENTRYPOINT
    assert f"EXPOSE {AGENT_PORT}" in agent_stage
    with open(os.path.join(REPOSITORY, "docker-compose.fleet.yml")) as handle:
        worker = yaml.safe_load(handle)["services"]["worker"]
    assert [part.replace("$$", "$") for part in worker["entrypoint"]] == AGENT_ENTRYPOINT
