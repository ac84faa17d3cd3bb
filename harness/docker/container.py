"""A worker's main process in a container, with the subprocess.Popen surface the run uses (pid,
poll, wait, send_signal, kill, returncode), and the container's memory cgroup as the run's group."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field

from harness.docker.engine import DockerUnavailable, docker
from harness.docker.testcontainers_start import start_with_testcontainers
from harness.limits.cgroup_v1 import CgroupV1
from harness.limits.cgroup_v2 import CgroupV2
from harness.proc import alive


@dataclass(frozen=True)
class ContainerSpec:
    """The worker's container: the limit (swap equal to it), in the host's pid and network namespaces,
    so the probe's pids are the kernel log's and the sampler's, and the embedded broker's socket works;
    the paths it shares with the host mounted at the same place."""

    name: str
    image: str
    argv: list[str]
    env: dict[str, str]
    mounts: list[str]
    memory_bytes: int
    log_path: str
    restart: str = "no"
    workdir: str = field(default_factory=os.getcwd)

    @property
    def shell_command(self) -> str:
        return f"exec {shlex.join(self.argv)} >> {shlex.quote(self.log_path)} 2>&1"


def start_with_cli(spec: ContainerSpec) -> None:
    args = [
        "run",
        "-d",
        "--name",
        spec.name,
        "--pid",
        "host",
        "--network",
        "host",
        "--memory",
        str(spec.memory_bytes),
        "--memory-swap",
        str(spec.memory_bytes),
        "--restart",
        spec.restart,
        "-w",
        spec.workdir,
    ]
    for mount in dict.fromkeys(spec.mounts):
        args += ["-v", f"{mount}:{mount}"]
    for key, value in spec.env.items():
        args += ["-e", f"{key}={value}"]
    docker(*args, spec.image, "sh", "-c", spec.shell_command)


STARTERS = {"cli": start_with_cli, "testcontainers": start_with_testcontainers}


class ContainerWorker:
    def __init__(self, name: str):
        self.name = name
        self.pid: int = 0  # the first main process's host pid
        self.returncode: int | None = None
        self._live_pid: int = 0  # the main process running now (a restart brings a new one)

    @classmethod
    def run(cls, spec: ContainerSpec, starter: str = "cli") -> ContainerWorker:
        """Start the container (with the docker CLI, or through testcontainers for the pytest plugin)
        and wait for its main process's host pid."""
        STARTERS[starter](spec)
        name, log_path = spec.name, spec.log_path
        worker = cls(name)
        deadline = time.monotonic() + 30
        while not worker.pid and time.monotonic() < deadline:
            state = worker.state()
            worker.pid = state.get("Pid") or 0
            if not state.get("Running") and state.get("Status") in ("exited", "dead"):
                break
            time.sleep(0.05)
        if not worker.pid:
            raise DockerUnavailable(f"container {name} did not start; see {log_path}")
        worker._live_pid = worker.pid
        return worker

    def inspect(self) -> dict:
        """Docker's whole view of the container, in one call ({} once it is gone)."""
        result = docker("inspect", self.name, check=False)
        found = json.loads(result.stdout or "[]") if result.returncode == 0 else []
        return found[0] if found else {}

    def state(self) -> dict:
        return self.inspect().get("State") or {}

    def restart_count(self) -> int:
        return int(self.inspect().get("RestartCount") or 0)

    def poll(self) -> int | None:
        """Asks Docker only once the process it last saw running is gone: the run polls often."""
        if self.returncode is not None or (self._live_pid and alive(self._live_pid)):
            return self.returncode
        state = self.state()
        if state.get("Running") and state.get("Pid"):
            self._live_pid = state["Pid"]  # restarted under its restart policy
        elif state and not state.get("Restarting"):
            code = state.get("ExitCode", 0)
            self.returncode = -signal.SIGKILL if code == 137 else code
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.name, timeout)
            time.sleep(0.05)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        docker("kill", "-s", signal.Signals(sig).name, self.name, check=False)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def remove(self) -> None:
        docker("rm", "-f", self.name, check=False)

    def memory_cgroup(self):
        """The container's memory cgroup, as the host sees it (v1 or v2)."""
        for line in open(f"/proc/{self.pid}/cgroup").read().splitlines():
            _, controllers, path = line.split(":", 2)
            if "memory" in controllers.split(","):
                full = "/sys/fs/cgroup/memory" + path
                return CgroupV1(os.path.dirname(full), os.path.basename(full))
            if controllers == "":
                full = "/sys/fs/cgroup" + path
                return CgroupV2(os.path.dirname(full), os.path.basename(full))
        raise DockerUnavailable(f"cannot find the memory cgroup of container {self.name}")
