"""Where the worker runs and what bounds its memory: the one interface a run drives.

A placement makes the memory cgroup (or finds it), starts the worker's main process in it (or
attaches to one), says what it knows about both in the record, and stops and removes what it made.
The run never asks which kind it has: a new kind (Kubernetes, say) is one new module here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

from oomlab.config.options import RunConfig
from oomlab.record.redact import mask_file
from oomlab.record.schema import GroupSection, KillRecord, WorkerSection
from oomlab.worker.leftovers import Lease
from oomlab.worker.limits.base import CgroupBackend

Step = Callable[[], object]


class WorkerProcess(Protocol):
    """A worker main process as the run sees it: subprocess.Popen's surface, whatever runs it."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...


@dataclass(frozen=True)
class WorkerLaunch:
    """How to start the worker: its command line and environment, and the host paths it must see
    (the run directory, the broker's socket, the scenario's folder)."""

    argv: list[str]
    env: dict[str, str]
    mounts: list[str]
    cwd: str | None = None  # a private, empty working directory (oomlab.trust.private_workdir)


class Placement:
    """The base: a worker oomlab starts in a group of its own. Subclasses override what differs."""

    kind: ClassVar[str] = ""
    owns_worker: ClassVar[bool] = True  # False: someone else's worker, never stopped or leased
    can_stop_outright: ClassVar[bool] = False  # killing the group is a clean stop (nothing else in it)

    def __init__(self, config: RunConfig, run_id: str, run_dir: str, lease: Lease):
        self.config, self.run_id, self.run_dir, self.lease = config, run_id, run_dir, lease
        self.group: CgroupBackend | None = None
        self.workers: list[WorkerProcess] = []  # every main process started, the current one last
        self._launch: WorkerLaunch | None = None

    # --- naming and files ---------------------------------------------------------------------
    def queue(self) -> str:
        return f"oomlab.{self.run_id}"

    def hostname(self, host: str) -> str:
        return f"oomlab-{self.run_id}@{host}"

    @property
    def log_path(self) -> str:
        return os.path.join(self.run_dir, "worker.log")

    @property
    def probe_path(self) -> str:
        return os.path.join(self.run_dir, "probe.jsonl")

    @property
    def worker(self) -> WorkerProcess:
        return self.workers[-1]

    # --- life cycle ------------------------------------------------------------------------------
    def prepare(self) -> None:
        """What must exist before the broker and the worker (the group, an image)."""

    def launch(self, launch: WorkerLaunch) -> WorkerProcess:
        """Start the worker's main process (again, under a restart policy) and lease it."""
        self._launch = launch
        worker = self._start(launch)
        self.workers.append(worker)
        self.lease.add_process(worker.pid)
        return worker

    def restart(self) -> WorkerProcess:
        assert self._launch is not None, "restart before launch"
        return self.launch(self._launch)

    def _start(self, launch: WorkerLaunch) -> WorkerProcess:
        raise NotImplementedError

    def worker_env(self) -> dict[str, str]:
        """What the worker's environment needs from the placement (where to make its leaves)."""
        return {}

    def starting_trouble(self) -> str | None:
        """Checked while waiting for the worker: a reason to stop waiting (a crash loop), or None."""
        return None

    def stop_steps(self, quick: bool) -> list[Step]:
        """Stop every worker process: at once when `quick`, else a warm shutdown, then the group."""
        raise NotImplementedError

    def after_stop_steps(self) -> list[Step]:
        """Once the workers are gone: what the placement reads or removes about them."""
        return []

    def remove(self) -> None:
        """Remove what the placement made (its group); after every process in it is gone."""

    def finish(self) -> list[str]:
        """Last, before the final record is written (copy what the run directory should hold);
        returns what went wrong, for the record's cleanup errors. The worker wrote its own log:
        any password in it (Celery quotes exception messages whole) is masked now."""
        try:
            mask_file(self.log_path)
        except OSError as exc:
            return [f"masking worker.log: {exc}"]
        return []

    # --- what goes in the record -------------------------------------------------------------------
    def describe_group(self, section: GroupSection) -> None:
        group = self.group
        assert group is not None
        section.path, section.cgroup_version = group.path, group.version
        section.placement, section.oom_notice = self.kind, group.oom_notice
        section.files.limit, section.files.usage = group.limit_file, group.usage_file
        section.files.peak, section.files.events = group.peak_file, group.events_file

    def describe_worker(self, section: WorkerSection) -> None:
        """Placement facts about the worker (its container, how it was attached)."""

    def crash_loop(self, kills: list[KillRecord], section: WorkerSection) -> str | None:
        """A sentence when the worker kept being killed at start-up under a restart policy."""
        return None
