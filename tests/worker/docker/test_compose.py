"""docker-compose.yml, brought up for real: Redis, RabbitMQ and PostgreSQL servers, the worker under
its mem_limit and oomlab attached to it from its own container.

No image registry is reachable here, so tests/compose/offline.yml swaps the three services' images
for one of Debian's packages (built once per machine) and oomlab's image for the one its Docker
backend builds from a wheelhouse; the stack itself is docker-compose.yml unchanged. In CI a missing
engine or Compose fails these tests (the `docker` marker), it does not skip them."""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import subprocess

import pytest
from oomlab.worker.docker.engine import PROJECT, worker_image

from tests.worker.limits.test_cgroup_backend import MIB, assert_one_kill_and_exact_peaks

pytestmark = [pytest.mark.integration, pytest.mark.docker]
SERVICES_IMAGE = "oomlab-services:bookworm"


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    raise AssertionError("neither `docker compose` nor docker-compose is installed (.ci/run installs docker-compose)")


def services_image() -> str:
    if subprocess.run(["docker", "image", "inspect", SERVICES_IMAGE], capture_output=True).returncode != 0:
        built = subprocess.run(
            [
                "docker",
                "build",
                "-q",
                "--network",
                "host",
                "-t",
                SERVICES_IMAGE,
                os.path.join(PROJECT, "tests", "compose", "services"),
            ],
            capture_output=True,
            text=True,
        )
        assert built.returncode == 0, built.stderr[-2000:]
    return SERVICES_IMAGE


@pytest.fixture
def stack(tmp_path):
    """Bring the stack up with these knobs until oomlab exits; returns (exit code, output, run.json)."""
    command = compose_command()
    project = f"oomlab-test-{secrets.token_hex(4)}"
    files = [
        "-f",
        os.path.join(PROJECT, "docker-compose.yml"),
        "-f",
        os.path.join(PROJECT, "tests/compose/offline.yml"),
    ]
    base_env = {
        **os.environ,
        "OOMLAB_IMAGE": worker_image(),
        "OOMLAB_SERVICES_IMAGE": services_image(),
        "OOMLAB_RESULTS": str(tmp_path),
    }

    def up(**knobs: str):
        env = {**base_env, **knobs}
        done = subprocess.run(
            [
                *command,
                "-p",
                project,
                *files,
                "up",
                "--no-build",
                "--abort-on-container-exit",
                "--exit-code-from",
                "oomlab",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=400,
        )
        runs = glob.glob(os.path.join(tmp_path, "*", "run.json"))
        record = json.load(open(runs[0])) if len(runs) == 1 else None
        return done.returncode, done.stdout + done.stderr, record

    try:
        yield up
    finally:
        subprocess.run(
            [*command, "-p", project, *files, "down", "-v", "--remove-orphans", "--timeout", "3"],
            capture_output=True,
            env=base_env,
            timeout=120,
        )
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert not left, f"containers of {project} left behind: {left}"


def test_compose_up_measures_the_limited_worker_from_the_oomlab_service(stack, tmp_path):
    results = str(tmp_path)
    code, output, record = stack(OOMLAB_WORKER_ARGS="--concurrency 1", OOMLAB_RUN_ARGS="--tasks 8")
    assert code == 0, output[-3000:]
    assert record is not None, output[-3000:]
    assert_one_kill_and_exact_peaks(record, "(in the oomlab service)")
    group = record["group"]
    assert group["placement"] == "attached" and group["limit_bytes"] == 256 * MIB
    assert group["path"].startswith("/sys/fs/cgroup")  # the worker's own view, reached through /proc/PID/root
    assert record["worker"]["broker"].startswith("redis://redis:6379")
    # Celery's notice of the dead child, from the worker's log in the share (its latency can be a hair
    # below 0 where the kill's time is inferred, from oomlab's own first sight of it)
    assert "celery_pool_noticed" in record["kills"][0]["detected"]
    run_dir = os.path.join(results, record["run_id"])
    for name in ("run.json", "probe.jsonl", "worker.log", "samples.csv", "timeline.png"):  # all on the host
        assert os.path.getsize(os.path.join(run_dir, name)) > 0, name
    assert "oomlab_1" in output or "oomlab-1" in output  # the summary is in the oomlab service's log


def test_compose_stack_runs_on_rabbitmq_with_postgresql(stack):
    code, output, record = stack(
        OOMLAB_SCENARIO="unbuffered-select",
        OOMLAB_BROKER="amqp://guest:guest@rabbitmq:5672//",
        OOMLAB_WORKER_ARGS="--variant fixed --concurrency 1 --param rows=20000 "
        "--param database_url=postgresql+psycopg://oomlab:oomlab@postgres/oomlab",
    )
    assert code == 0, output[-3000:]
    assert record["worker"]["broker"].startswith("amqp://")
    assert record["tasks"] and all(t["outcome"] == "succeeded" for t in record["tasks"]), record["tasks"]
    assert all(t["peak_is_exact"] for t in record["tasks"])
