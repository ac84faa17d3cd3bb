"""The worker's container started through testcontainers (what the pytest plugin uses with
`oomlab_backend = docker`): the same container as the docker CLI starts, labelled by testcontainers.

Ryuk, testcontainers' reaper, is off unless asked for: its image comes from a registry, and oomlab's
lease already removes a container whose run died."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from harness.docker.engine import DockerUnavailable

if TYPE_CHECKING:
    from harness.docker.container import ContainerSpec


def start_with_testcontainers(spec: ContainerSpec) -> None:
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    try:
        from testcontainers.core.container import DockerContainer
    except ImportError:
        raise DockerUnavailable(
            "the Docker backend in pytest starts its worker through testcontainers, which is "
            "not installed: pip install 'oomlab[docker]'"
        ) from None
    restart = (
        None
        if spec.restart == "no"
        else {"Name": spec.restart, **({"MaximumRetryCount": 0} if spec.restart == "on-failure" else {})}
    )
    container = (
        DockerContainer(
            spec.image, name=spec.name, env=dict(spec.env), volumes=[(m, m, "rw") for m in dict.fromkeys(spec.mounts)]
        )
        .with_command(["sh", "-c", spec.shell_command])
        .with_kwargs(
            pid_mode="host",
            network_mode="host",
            mem_limit=spec.memory_bytes,
            memswap_limit=spec.memory_bytes,
            working_dir=spec.workdir,
            **({"restart_policy": restart} if restart else {}),
        )
    )
    try:
        container.start()
    except Exception as error:  # docker-py's APIError and friends: one sentence, not a traceback
        raise DockerUnavailable(f"testcontainers could not start the worker's container: {error}") from None
