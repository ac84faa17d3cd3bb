"""Placements: where the worker runs and what bounds its memory (see `base.Placement`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from oomlab.config.options import RunConfig
from oomlab.worker.leftovers import Lease
from oomlab.worker.placement.base import Placement, WorkerLaunch, WorkerProcess

if TYPE_CHECKING:
    from oomlab.worker.share import WorkerShare

__all__ = ["Placement", "WorkerLaunch", "WorkerProcess", "open_placement"]


def open_placement(
    config: RunConfig, run_id: str, run_dir: str, lease: Lease, share: WorkerShare | None = None
) -> Placement:
    """The placement the configuration names; each kind's module is imported only when used."""
    if config.placement == "attached":
        from oomlab.worker.placement.attached import Attached

        assert share is not None, "an attached run needs the worker's share"
        return Attached(config, run_id, run_dir, lease, share)
    if config.placement == "docker":
        from oomlab.worker.placement.container import DockerContainer

        return DockerContainer(config, run_id, run_dir, lease)
    from oomlab.worker.placement.own_cgroup import OwnCgroup

    return OwnCgroup(config, run_id, run_dir, lease)
