"""Hosts for a fleet test: network namespaces (`ip netns`), one for the controller and its Redis and
one per worker, each worker joined to the controller's by a veth pair of its own (10.77.i.1 on the
controller's side, 10.77.i.2 on the worker's). Names are unique per test (parallel-safe), and every
namespace (with its veths) and every process started in one is removed on the way out, failure or not.

Processes enter a namespace with `nsenter --net=` only: `ip netns exec` would also remount /sys,
hiding the memory cgroups the agents make."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

REDIS_PORT = 6390
HERE = Path(__file__).parent  # the workers' working directory: only root can write it


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


class Hosts:
    def __init__(self, workers: int):
        token = uuid.uuid4().hex[:6]
        self.token = token
        self.controller = f"olf{token}c"
        self.workers = [f"olf{token}w{i}" for i in range(1, workers + 1)]
        self.made: list[str] = []
        self.processes: list[subprocess.Popen] = []

    def make(self) -> None:
        for tool in ("ip", "nsenter", "redis-server", "redis-cli"):
            assert shutil.which(tool), f"{tool} is needed for the fleet tests and is not installed"
        _ip("netns", "add", self.controller)
        self.made.append(self.controller)
        _ip("-n", self.controller, "link", "set", "lo", "up")
        for i, name in enumerate(self.workers, start=1):
            _ip("netns", "add", name)
            self.made.append(name)
            ours, theirs = f"vf{self.token}c{i}", f"vf{self.token}w{i}"
            _ip("link", "add", ours, "netns", self.controller, "type", "veth", "peer", "name", theirs, "netns", name)
            _ip("-n", self.controller, "addr", "add", f"10.77.{i}.1/24", "dev", ours)
            _ip("-n", self.controller, "link", "set", ours, "up")
            _ip("-n", name, "addr", "add", f"10.77.{i}.2/24", "dev", theirs)
            _ip("-n", name, "link", "set", theirs, "up")
            _ip("-n", name, "link", "set", "lo", "up")

    def redis_for(self, worker_index: int) -> str:
        """The controller's Redis as worker i (1-based) reaches it."""
        return f"10.77.{worker_index}.1:{REDIS_PORT}"

    def start(self, namespace: str, argv: list[str], log: Path, **kwargs) -> subprocess.Popen:
        with open(log, "ab") as out:
            process = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{namespace}", *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **kwargs,
            )
        self.processes.append(process)
        return process

    def start_redis(self, tmp: Path) -> subprocess.Popen:
        argv = [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(REDIS_PORT),
            "--bind",
            "0.0.0.0",
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ]
        process = self.start(self.controller, argv, tmp / "redis.log")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["nsenter", f"--net=/run/netns/{self.controller}", "redis-cli", "-p", str(REDIS_PORT), "ping"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            if probe.stdout.strip() == "PONG":
                return process
            assert process.poll() is None, (tmp / "redis.log").read_text()
            time.sleep(0.1)
        raise AssertionError("the private redis-server did not answer in 10 s")

    def stop(self, process: subprocess.Popen, grace: float = 20) -> int | None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        return process.returncode

    def remove(self) -> None:
        for process in reversed(self.processes):
            try:
                self.stop(process)
            except Exception:
                pass
        for name in reversed(self.made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def start_agent(
    hosts_: Hosts,
    i: int,
    stream: str,
    queue: str,
    tmp: Path,
    events_port: int = REDIS_PORT,
    concurrency: int = 1,
    memory: str = "200MiB",
    app: str = "oomlab.scenarios.alloc",
):
    """Replica r<i>: `oomlab agent --memory ... --events-from-env ... -- celery -A oomlab.scenarios.alloc worker` in
    worker namespace i, its broker and events on the controller's Redis; (name, process, log)."""
    name = f"r{i}"
    redis = hosts_.redis_for(i)
    host = redis.rsplit(":", 1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
    env.update(
        CELERY_BROKER_URL=f"redis://{redis}/0",
        CELERY_RESULT_BACKEND=f"redis://{redis}/0",
        FLEET_EVENTS=f"redis://:unused-secret@{host}:{events_port}/1/{stream}",
    )
    argv = [
        sys.executable, "-m", "oomlab", "agent", "--memory", memory, "--events-from-env", "FLEET_EVENTS",
        "--replica", name, "--",
        sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queue, "-c", str(concurrency),
        "-n", f"{name}@{stream}", "--prefetch-multiplier", "1", "-l", "info",
    ]  # fmt: skip
    log = tmp / f"{name}.log"
    return name, hosts_.start(hosts_.workers[i - 1], argv, log, env=env, cwd=HERE), log


def run_controller(
    hosts_: Hosts,
    stream: str,
    queue: str,
    tmp: Path,
    *extra: str,
    replicas: str = "3",
    results: Path | None = None,
    scenario: str = "alloc",
) -> subprocess.CompletedProcess:
    """`oomlab run alloc --fleet ...` in the controller's namespace, to the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
    argv = [
        "nsenter", f"--net=/run/netns/{hosts_.controller}", sys.executable, "-m", "oomlab", "run", scenario,
        "--fleet", f"redis://127.0.0.1:{REDIS_PORT}/1/{stream}", "--replicas", replicas, "--queue", queue,
        "--broker", f"redis://127.0.0.1:{REDIS_PORT}/0", "--results", str(results or tmp / "results"), *extra,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, cwd=HERE)


def run_single(tmp: Path, *args: str, results: Path | None = None) -> str:
    """`oomlab run alloc ARGS` on this host (its own cgroup and embedded broker): one worker's run of the
    tasks a fleet run then sets beside its own (`--beside`); its run directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
    argv = [sys.executable, "-m", "oomlab", "run", "alloc", "--results", str(results or tmp / "single"), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, cwd=HERE)
    assert done.returncode == 0, f"the single-worker run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout.strip().splitlines()[-1]


def redis_cli(hosts_: Hosts, *command: str) -> str:
    argv = ["nsenter", f"--net=/run/netns/{hosts_.controller}", "redis-cli", "-p", str(REDIS_PORT), *command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()


def stop_all(hosts_: Hosts, agents) -> dict[str, int | None]:
    return {name: hosts_.stop(process, grace=30) for name, process, _log in agents}


@contextmanager
def hosts(workers: int):
    made = Hosts(workers)
    try:
        made.make()
        yield made
    finally:
        made.remove()
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert made.token not in left, f"namespaces left behind: {left}"
