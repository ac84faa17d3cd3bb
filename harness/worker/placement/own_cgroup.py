"""The worker in a memory cgroup of oomlab's own (v1 or v2), joined between fork and exec."""

from __future__ import annotations

import os
import subprocess
from functools import partial
from typing import Any

from oomlab.errors import NoPermission
from oomlab.worker import proc
from oomlab.worker.limits import open_cgroup_backend
from oomlab.worker.placement.base import Placement, Step, WorkerLaunch, WorkerProcess


class OwnCgroup(Placement):
    kind = "cgroup"
    can_stop_outright = True

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.processes: list[subprocess.Popen[bytes]] = []  # the workers, as the processes oomlab started

    def prepare(self) -> None:
        group = self.group = open_cgroup_backend(self.run_id)
        try:
            group.create(self.config.memory_bytes, self.config.oom_scope)
            group.prepare_leaves()  # a leaf per pool child (and, on v2, one for the main process)
        except PermissionError as exc:
            raise NoPermission(
                f"cannot create a memory cgroup at {group.path}: {exc.strerror}; "
                f"run as root or set OOMLAB_CGROUP_PARENT to a writable cgroup"
            ) from None
        except OSError as exc:
            raise NoPermission(f"cannot set up the memory cgroup {group.path}: {exc}") from None
        finally:
            if os.path.isdir(group.path):
                self.lease.set_cgroup(group.path)

    def _start(self, launch: WorkerLaunch) -> WorkerProcess:
        assert self.group is not None
        process = proc.spawn(
            launch.argv, log_path=self.log_path, env=launch.env, cwd=launch.cwd, join_cgroup=self.group.join_file
        )
        self.processes.append(process)
        return process

    def worker_env(self) -> dict[str, str]:
        """The probe moves each pool child into a leaf of its own: a task's whole tree, counted."""
        return self.group.leaf_env() if self.group is not None else {}

    def stop_steps(self, quick: bool) -> list[Step]:
        group = self.group
        if group is None:
            return []  # the group was never made: nothing was started in it
        grace = 0.0 if quick else 3.0
        return [partial(proc.stop, p, grace=grace, on_timeout=group.kill_all) for p in self.processes]

    def remove(self) -> None:
        if self.group is not None:
            self.group.remove()
