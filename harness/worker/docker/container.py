"""A worker's main process in a container, with the subprocess.Popen surface the run uses (pid,
poll, wait, send_signal, kill, returncode), and the container's memory cgroup as the run's group."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from oomlab.worker.docker.engine import DockerUnavailable, client, engine_errors, remove_container
from oomlab.worker.docker.spec import ContainerSpec
from oomlab.worker.docker.testcontainers_start import start_with_testcontainers
from oomlab.worker.limits.cgroup_v1 import CgroupV1
from oomlab.worker.limits.cgroup_v2 import CgroupV2
from oomlab.worker.proc import alive


def start_with_sdk(spec: ContainerSpec) -> None:
    """Create and start the container through the engine's API (no pull: the image was built here)."""
    engine = client()
    with engine_errors(f"start the worker's container {spec.name}"):
        container = engine.containers.create(
            spec.image,
            spec.command,
            name=spec.name,
            environment=dict(spec.env),
            volumes={path: {"bind": path, "mode": "rw"} for path in spec.shared_paths},
            **spec.host_config,
        )
        container.start()


# "cli" is the old name of "sdk" (oomlab ran `docker run` once): records and configs that say it still work
STARTERS = {"sdk": start_with_sdk, "cli": start_with_sdk, "testcontainers": start_with_testcontainers}


class ContainerWorker:
    def __init__(self, name: str):
        self.name = name
        self.pid: int = 0  # the first main process's host pid
        self.returncode: int | None = None
        self._live_pid: int = 0  # the main process running now (a restart brings a new one)

    @classmethod
    def run(cls, spec: ContainerSpec, starter: str = "sdk") -> ContainerWorker:
        """Start the container (through the Docker SDK, or through testcontainers for the pytest plugin)
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
        """Docker's whole view of the container, in one call, as `docker inspect` gives it ({} once
        it is gone, or when the engine cannot be asked)."""
        try:
            with engine_errors(f"inspect the container {self.name}"):
                return client().api.inspect_container(self.name)
        except DockerUnavailable:
            return {}

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
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.name, timeout or 0.0)
            time.sleep(0.05)
        return code

    def send_signal(self, sig: int) -> None:
        """Signal the main process through Docker (nothing happens once the container has stopped)."""
        try:
            with engine_errors(f"signal the container {self.name}"):
                client().api.kill(self.name, signal=signal.Signals(sig).name)
        except DockerUnavailable:  # not running (any more), or gone
            pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def remove(self) -> None:
        remove_container(self.name)

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
