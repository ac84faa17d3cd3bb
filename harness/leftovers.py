"""A lease per run listing what it owns, so the next run can clean up after one that was SIGKILLed.

The lease lives in a per-user state directory. A lease whose owner (pid + start time) is gone is
stale: its processes (checked by start time, so a recycled pid is never hit), cgroup, socket and
temporary paths are removed by `sweep_stale`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from dataclasses import asdict, dataclass, field

from harness.docker.engine import remove_container
from harness.limits.base import CgroupBackend
from harness.procfs import alive_since, start_time_ticks


def state_dir() -> str:
    configured = os.environ.get("OOMLAB_STATE_DIR")
    if configured:
        path = configured
    elif os.geteuid() == 0:
        path = "/run/oomlab"
    else:
        path = os.path.join(os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/oomlab-{os.getuid()}", "oomlab")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


@dataclass
class Lease:
    run_id: str
    owner_pid: int
    owner_start: int | None
    cgroup: str | None = None
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    # (broker URL, queue) on a service broker: a durable queue outlives a SIGKILLed run otherwise;
    # the lease sits in a 0700 directory, so the URL's credentials stay with their owner
    queues: list[tuple[str, str]] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)  # Docker backend: force-removed through the engine's API

    @classmethod
    def for_this_process(cls, run_id: str) -> Lease:
        pid = os.getpid()
        return cls(run_id=run_id, owner_pid=pid, owner_start=start_time_ticks(pid))

    @property
    def file(self) -> str:
        return os.path.join(state_dir(), f"{self.run_id}.json")

    def add_process(self, pid: int) -> None:
        self.processes.append((pid, start_time_ticks(pid)))
        self.save()

    def add_path(self, path: str) -> None:
        self.paths.append(path)
        self.save()

    def add_container(self, name: str) -> None:
        self.containers.append(name)
        self.save()

    def add_queue(self, broker_url: str, queue: str) -> None:
        self.queues.append((broker_url, queue))
        self.save()

    def set_cgroup(self, path: str) -> None:
        self.cgroup = path
        self.save()

    def save(self) -> None:
        tmp = f"{self.file}.tmp"
        with open(tmp, "w") as handle:
            json.dump(asdict(self), handle)
        os.replace(tmp, self.file)

    def release(self) -> None:
        try:
            os.unlink(self.file)
        except FileNotFoundError:
            pass

    def owner_alive(self) -> bool:
        return self.owner_start is not None and alive_since(self.owner_pid) == self.owner_start

    def clean(self) -> list[str]:
        """Remove everything the lease names; returns what was actually found and removed."""
        removed = []
        for pid, started in self.processes:
            if started is not None and alive_since(pid) == started:
                try:
                    os.kill(pid, signal.SIGKILL)
                    removed.append(f"process {pid}")
                except ProcessLookupError:
                    pass
        if self.cgroup and os.path.isdir(self.cgroup):
            CgroupBackend(os.path.dirname(self.cgroup), os.path.basename(self.cgroup)).remove()
            removed.append(f"cgroup {self.cgroup}")
        for path in self.paths:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
            elif os.path.lexists(path):
                os.unlink(path)
                removed.append(path)
        removed.extend(f"container {name}" for name in self.containers if remove_container(name))
        for broker_url, queue in self.queues:
            try:
                delete_queue(broker_url, queue)
                removed.append(f"queue {queue}")
            except Exception:  # the broker is down: nothing more to do from here
                pass
        return removed


def delete_queue(broker_url: str, queue: str) -> None:
    """Delete a run's queue on a service broker (at the end of the run, or after its SIGKILL)."""
    from kombu import Connection

    with Connection(broker_url, connect_timeout=2) as connection:
        connection.default_channel.queue_delete(queue)


def sweep_stale() -> list[str]:
    """Clean up after runs whose oomlab process died without cleaning up; returns what was removed."""
    removed: list[str] = []
    directory = state_dir()
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue
        path = os.path.join(directory, name)
        try:
            with open(path) as handle:
                data = json.load(handle)
            lease = Lease(
                **{
                    **data,
                    "processes": [tuple(p) for p in data.get("processes", [])],
                    "queues": [tuple(q) for q in data.get("queues", [])],
                }
            )
        except (OSError, ValueError, TypeError):
            continue
        if lease.owner_alive():
            continue
        removed.extend(lease.clean())
        lease.release()
    return removed
