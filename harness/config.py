"""A run's configuration as the user gave it, resolved against the scenario's defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RunConfig:
    scenario: str
    memory: str
    memory_bytes: int
    concurrency: int
    pool: str = "prefork"
    tasks: int | None = None
    variant: str = "default"
    params: dict[str, Any] = field(default_factory=dict)
    broker: str | None = None
    backend: str | None = None
    oom_scope: str = "process"
    results_dir: str = "results"
    timeout: float | None = None
    start_timeout: float = 60.0
    sample_hz: float = 100.0
    tracemalloc: bool = False
    celery_conf: dict[str, Any] = field(default_factory=dict)
    queue_arguments: dict[str, Any] = field(default_factory=dict)  # e.g. x-queue-type quorum, x-delivery-limit
    restart: str = "no"  # no | always: start a new worker when the main process dies (a restart policy)
    restart_delay: float = 1.0
    settle: float = 0.3  # seconds to keep watching once every task is final
    backend_kind: str = "cgroup"  # cgroup: a memory cgroup of oomlab's own | docker: a container with the limit | attached: a worker oomlab did not start
    docker_restart: str = "no"  # Docker's restart policy for the worker's container (no | on-failure | always)
    container_starter: str = "cli"  # cli: `docker run` | testcontainers: as the pytest plugin starts it
    profile: tuple[str, ...] = ()  # task names memray tracks per execution ("all": every task); empty: none
    attach: str | None = None  # the share directory of a worker oomlab did not start (`oomlab worker`)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
