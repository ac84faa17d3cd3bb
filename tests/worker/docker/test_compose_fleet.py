"""docker-compose.fleet.yml brought up for real: `--scale worker=3` replicas of a Celery worker, each under
`oomlab agent` (the entrypoint) with its own mem_limit, behind one Redis broker; the test is the
controller outside, sending tasks through the published broker and reading each replica's agent at its
Prometheus /metrics, as Prometheus would.

No image registry is reachable here: Redis comes from the services image of Debian's packages
(tests/compose/services), the workers' image is the Docker backend's own build of workers/Dockerfile
(`up --no-build`); the compose file is the one users run. A missing engine or Compose fails this test."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

import pytest
import redis
from celery import Celery
from kombu.exceptions import OperationalError
from oomlab.record.fleet import load_fleet
from oomlab.worker.docker.engine import PROJECT, worker_image
from oomlab.workflows.recommend.handover import AGENT_PORT
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TIME_SCALE
from tests.worker.docker.test_compose import compose_command, services_image

pytestmark = [pytest.mark.integration, pytest.mark.docker]
MIB = 1024 * 1024
REPLICAS = 3
LIMIT_MIB = 192
FITTING = 8  # tasks of 16 MiB: far below the limit
OVER_MIB = 2 * LIMIT_MIB  # one task asks for twice the replica's limit: the kernel kills its pool child
START_S = 60 * TIME_SCALE


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def metrics(address: str) -> dict[str, float]:
    """One replica's agent, scraped: each sample by name and labels (`name{k=v,...}`) and each name's sum
    over its label sets (`name`); histogram buckets left out."""
    with urllib.request.urlopen(f"http://{address}:{AGENT_PORT}/metrics", timeout=5) as response:
        text = response.read().decode()
    figures: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "le" in sample.labels:
                continue
            if sample.labels:
                labels = ",".join(f"{key}={value}" for key, value in sorted(sample.labels.items()))
                figures[f"{sample.name}{{{labels}}}"] = sample.value
            figures[sample.name] = figures.get(sample.name, 0.0) + sample.value
    return figures


def leftovers(project: str) -> dict[str, list[str]]:
    label = f"label=com.docker.compose.project={project}"
    found = {}
    for kind, listing in (
        ("containers", ["docker", "ps", "-aq"]),
        ("networks", ["docker", "network", "ls", "-q"]),
        ("volumes", ["docker", "volume", "ls", "-q"]),
    ):
        found[kind] = subprocess.run(
            [*listing, "--filter", label], capture_output=True, text=True, check=True
        ).stdout.split()
    return found


@dataclass
class ComposeFleet:
    """docker-compose.fleet.yml up with REPLICAS workers: how to reach it, and what `down` must remove."""

    project: str
    command: list[str]  # compose with this project and file: append a subcommand
    env: dict[str, str]
    port: int  # the compose Redis, published on 127.0.0.1
    ids: list[str] = field(default_factory=list)  # the worker containers


@pytest.fixture
def compose_fleet():
    """up(prefix, worker queues, **env): the fleet started, each replica `-c 1` under LIMIT_MIB; at the end
    `down -v`, checked to leave no container, network or volume of its project, failure or not."""
    made: list[ComposeFleet] = []

    def up(prefix: str, queues: str, **extra: str) -> ComposeFleet:
        project = f"{prefix}-{secrets.token_hex(4)}"
        command = [*compose_command(), "-p", project, "-f", os.path.join(PROJECT, "docker-compose.fleet.yml")]
        port = free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith("OOMLAB_")}
        env |= {
            "OOMLAB_IMAGE": worker_image(),
            "OOMLAB_REDIS_IMAGE": services_image(),
            "OOMLAB_REDIS_PORT": f"127.0.0.1:{port}",
            "OOMLAB_MEMORY": f"{LIMIT_MIB}m",
            "OOMLAB_WORKER_ARGS": f"--queues={queues} --concurrency=1 --prefetch-multiplier=1 --without-gossip "
            "--without-mingle",
            **extra,
        }
        fleet = ComposeFleet(project, command, env, port)
        made.append(fleet)  # brought down even when `up` fails half-way
        started = subprocess.run(
            [*command, "up", "-d", "--no-build", "--scale", f"worker={REPLICAS}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=START_S,
        )
        assert started.returncode == 0, started.stderr[-3000:]
        fleet.ids = subprocess.run(
            [*command, "ps", "-q", "worker"], capture_output=True, text=True, env=env, check=True
        ).stdout.split()
        assert len(fleet.ids) == REPLICAS, fleet.ids
        return fleet

    yield up
    for fleet in made:
        down = subprocess.run(
            [*fleet.command, "down", "-v", "--remove-orphans", "--timeout", "10"],
            capture_output=True,
            text=True,
            env=fleet.env,
            timeout=120,
        )
        assert down.returncode == 0, down.stderr[-2000:]
        assert leftovers(fleet.project) == {"containers": [], "networks": [], "volumes": []}


def test_three_agent_wrapped_replicas_count_the_one_kill_on_the_replica_that_had_it(compose_fleet):
    started = time.monotonic()
    fleet = compose_fleet("oomlab-fleet", "celery")
    command, env, port, ids = fleet.command, fleet.env, fleet.port, fleet.ids
    app = Celery("controller", broker=f"redis://127.0.0.1:{port}/0", backend=f"redis://127.0.0.1:{port}/1")
    try:
        inspected = subprocess.run(
            ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", *ids],
            capture_output=True,
            text=True,
            check=True,
        )
        addresses = inspected.stdout.split()
        assert len(set(addresses)) == REPLICAS, addresses

        # every replica's agent serves its metrics and every worker answers, before any task is sent
        # (else the first one up would take them all)
        deadline = time.monotonic() + START_S
        while True:
            try:
                seen = [metrics(address) for address in addresses]
                replies = app.control.ping(timeout=1.0)
            except (OSError, OperationalError):  # an agent not serving yet, the broker not published yet
                seen, replies = [], []
            if len(seen) == REPLICAS and len(replies) == REPLICAS:
                break
            assert time.monotonic() < deadline, f"not every replica up: {len(seen)} agents, {replies}"
            time.sleep(0.5)
        for figures in seen:  # each agent reads its own container's limit from its cgroup
            assert figures["oomlab_worker_memory_limit_bytes"] == LIMIT_MIB * MIB, figures

        fitting = [app.send_task("alloc.allocate", (16, 0.5)) for _ in range(FITTING // 2)]
        over = app.send_task("alloc.allocate", (OVER_MIB, 0.5))
        fitting += [app.send_task("alloc.allocate", (16, 0.5)) for _ in range(FITTING - FITTING // 2)]
        deadline = time.monotonic() + 40 * TIME_SCALE
        while not all(result.ready() for result in [*fitting, over]):
            assert time.monotonic() < deadline, [r.state for r in [*fitting, over]]
            time.sleep(0.3)
        assert [result.get(timeout=5) for result in fitting] == [16 * MIB] * FITTING
        # the agent's OOMKilled is the last word, after Celery's own WorkerLostError (stored when the
        # main process notices the dead child, up to seconds later; the agent writes its failure again)
        backend = redis.Redis(port=port, db=1)
        deadline = time.monotonic() + 10 * TIME_SCALE
        while True:
            killed = json.loads(backend.get(f"celery-task-meta-{over.id}"))
            if killed["result"]["exc_type"] == "OOMKilled":
                break
            assert time.monotonic() < deadline, killed
            time.sleep(0.2)
        assert killed["status"] == "FAILURE" and "alloc.allocate" in json.dumps(killed["result"]), killed

        # through each replica's agent: the kill on exactly one, every task's peak on some replica
        deadline = time.monotonic() + 10 * TIME_SCALE
        while True:  # an agent counts a kill once its repair is done
            seen = [metrics(address) for address in addresses]
            kills = [figures.get("oomlab_oom_kills_total", 0.0) for figures in seen]
            if sum(kills) >= 1:
                break
            assert time.monotonic() < deadline, kills
            time.sleep(0.2)
        assert sorted(kills) == [0.0] * (REPLICAS - 1) + [1.0], kills
        victim = seen[kills.index(1.0)]
        labelled = {key: value for key, value in victim.items() if key.startswith("oomlab_oom_kills_total{")}
        assert labelled == {"oomlab_oom_kills_total{queue=celery,role=pool child,task=alloc.allocate}": 1.0}, victim
        ran = [figures.get("oomlab_task_peak_bytes_count", 0.0) for figures in seen]
        # every finished task's exact peak, on the replica that ran it; the killed one's own peak is not
        # known in a container (no /dev/kmsg for the victim's RSS, no leaf cgroups without --memory)
        assert sum(ran) == FITTING, ran
        # the agent is each container's PID 1 (the entrypoint's shell exec'd it), so SIGTERM from `stop`
        # reaches it and it passes it on: Celery's warm shutdown, every replica exiting 0
        for container in ids:
            pid1 = subprocess.run(
                ["docker", "exec", container, "cat", "/proc/1/cmdline"], capture_output=True, check=True
            ).stdout.split(b"\0")
            assert pid1[pid1.index(b"agent") - 1].endswith(b"oomlab") and b"celery" in pid1, pid1
        stopped = subprocess.run(
            [*command, "stop", "--timeout", "30", "worker"], capture_output=True, text=True, env=env, timeout=60
        )
        assert stopped.returncode == 0, stopped.stderr
        codes = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.ExitCode}}", *ids], capture_output=True, text=True, check=True
        ).stdout.split()
        assert codes == ["0"] * REPLICAS, codes
        print(f"fleet: kills per replica {kills}, task peaks per replica {ran}, {time.monotonic() - started:.1f} s")
    finally:
        app.close()


def test_a_fleet_run_across_three_containers_with_one_replica_oom_killed(tmp_path, compose_fleet):
    """`oomlab run alloc --fleet ... --replicas 3` from the host against docker-compose.fleet.yml scaled to 3,
    each replica's agent publishing on a stream of this test's own (OOMLAB_EVENTS) on the compose Redis:
    every task accounted for in fleet.json, the kill on the replica whose own agent counted it at /metrics."""
    stream, queue = f"fleet-{secrets.token_hex(4)}", f"fleet.{secrets.token_hex(4)}"
    started = time.monotonic()
    fleet = compose_fleet("oomlab-fleetrun", queue, OOMLAB_EVENTS=f"redis://redis:6379/1/{stream}")
    port, ids = fleet.port, fleet.ids
    # each agent's replica name is its container's hostname (no --replica): name -> address
    inspected = subprocess.run(
        [
            "docker",
            "inspect",
            "-f",
            "{{.Config.Hostname}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            *ids,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    addresses = dict(line.split() for line in inspected.stdout.strip().splitlines())
    assert len(addresses) == REPLICAS, addresses
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "OOMLAB_FLEET"))}
    # 12 tasks of 16-64 MiB; the 7th asks for 1.25 x the 192 MiB limit and is OOM-killed wherever it runs
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "oomlab",
            "run",
            "alloc",
            "--fleet",
            f"redis://127.0.0.1:{port}/1/{stream}",
            "--replicas",
            str(REPLICAS),
            "--queue",
            queue,
            "--broker",
            f"redis://127.0.0.1:{port}/0",
            "--result-backend",
            f"redis://127.0.0.1:{port}/1",
            "--results",
            str(tmp_path / "results"),
            "--tasks",
            "12",
            "--param",
            "every=12",
            "--param",
            "hold=0.4",
            "--hello-timeout",
            str(START_S),
        ],
        capture_output=True,
        text=True,
        env=run_env,
        timeout=120,
    )
    detail = f"{done.stdout}\n{done.stderr}"
    print(done.stdout)  # the summary docs/fleets.md and docs/docker.md show (pytest -s)
    assert done.returncode == 0, detail
    record = load_fleet(done.stdout.strip().splitlines()[-1])  # read back with the schema check
    f = record.figures
    assert record.status == "complete" and record.missing == 0, detail
    assert sorted(r.name for r in record.replicas) == sorted(addresses), detail
    assert (f.sent, f.succeeded, f.killed, f.lost, f.failed) == (12, 11, 1, 0, 0), detail
    assert all(t.replica in addresses and t.how_known == "events" for t in record.tasks), detail
    [kill] = [k for k in record.kills if k.role == "pool child"]
    assert kill.cause == "oom" and kill.limit_bytes == LIMIT_MIB * MIB, kill
    over = next(t for t in record.tasks if t.label.startswith("over-limit"))
    assert (over.outcome, over.replica, over.id) == ("killed", kill.replica, kill.task_id), detail
    # the cross-check: that replica's own agent counted the kill at /metrics, and no other did
    deadline = time.monotonic() + 10 * TIME_SCALE
    while True:
        kills = {name: metrics(address).get("oomlab_oom_kills_total", 0.0) for name, address in addresses.items()}
        if sum(kills.values()) >= 1:
            break
        assert time.monotonic() < deadline, kills
        time.sleep(0.2)
    assert kills == {name: float(name == kill.replica) for name in addresses}, (kills, kill.replica)
    assert f.throughput_per_s and f.throughput_per_s > 0 and f.latency_p50_s and f.latency_p95_s >= f.latency_p50_s
    assert f.wait_p50_s is not None and f.backlog and f.backlog_max is not None
    assert all(r.group_peak_bytes and r.group_peak_bytes <= LIMIT_MIB * MIB for r in record.replicas), detail
    assert all(r.clock is not None and abs(r.clock.offset_s) < 0.5 for r in record.replicas)
    assert record.stream_deleted
    assert redis.Redis(port=port, db=1).exists(stream) == 0, "the run's stream was not deleted"
    print(f"fleet run across containers: {time.monotonic() - started:.1f} s")
    assert time.monotonic() - started < 90  # up to the record read and checked (`down` is the fixture's)
