"""The worker's container started through testcontainers (what the pytest plugin uses with
`oomlab_placement = docker`): the same container as oomlab starts through the Docker SDK (the same
ContainerSpec.host_config), labelled by testcontainers.

Ryuk, testcontainers' reaper, is off unless asked for: its image comes from a registry, and oomlab's
lease already removes a container whose run died."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from oomlab.worker.docker.engine import DockerUnavailable, engine_errors

if TYPE_CHECKING:
    from oomlab.worker.docker.spec import ContainerSpec


def start_with_testcontainers(spec: ContainerSpec) -> None:
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    try:
        from testcontainers.core.container import DockerContainer
    except ImportError:
        raise DockerUnavailable(
            "the Docker placement in pytest starts its worker through testcontainers, which is "
            "not installed: pip install 'oomlab[docker]'"
        ) from None
    with engine_errors(f"start the worker's container {spec.name} through testcontainers"):
        container = DockerContainer(
            spec.image,
            name=spec.name,
            env=dict(spec.env),
            volumes=[(path, path, "rw") for path in spec.shared_paths],
            **spec.host_config,
        )
        container.with_command(spec.command).start()
