"""What a worker's container is, as data: both ways of starting it (the Docker SDK in container.py,
testcontainers in testcontainers_start.py) read the same spec."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ContainerSpec:
    """The worker's container: the limit (swap equal to it), in the host's pid and network namespaces,
    so the probe's pids are the kernel log's and the sampler's, and the embedded broker's socket works;
    the paths it shares with the host mounted at the same place. `workdir` is a new, empty private
    directory of the run's (mounted too), never the caller's working directory: Celery's find_app puts
    the working directory first on sys.path while it imports `-A`, and the container runs as root with
    the host's paths mounted."""

    name: str
    image: str
    argv: list[str]
    env: dict[str, str]
    mounts: list[str]
    memory_bytes: int
    log_path: str
    workdir: str
    restart: str = "no"

    @property
    def shell_command(self) -> str:
        return f"exec {shlex.join(self.argv)} >> {shlex.quote(self.log_path)} 2>&1"

    @property
    def command(self) -> list[str]:
        """The worker's argv behind a shell that sends its output to the run's worker.log."""
        return ["sh", "-c", self.shell_command]

    @property
    def shared_paths(self) -> list[str]:
        """The host paths mounted at the same place in the container, each once."""
        return list(dict.fromkeys([*self.mounts, self.workdir]))

    @property
    def host_config(self) -> dict[str, Any]:
        """The SDK's create() arguments for the limit, the namespaces, the restart policy and the
        working directory (testcontainers passes them on unchanged)."""
        restart = {"Name": self.restart, **({"MaximumRetryCount": 0} if self.restart == "on-failure" else {})}
        return {
            "pid_mode": "host",
            "network_mode": "host",
            "mem_limit": self.memory_bytes,
            "memswap_limit": self.memory_bytes,
            "working_dir": self.workdir,
            **({"restart_policy": restart} if self.restart != "no" else {}),
        }
