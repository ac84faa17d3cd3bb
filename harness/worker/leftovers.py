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
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from oomlab.probe.procfs import alive_since, start_time_ticks
from oomlab.record.redact import MASK, safe_url
from oomlab.record.status import settle_status
from oomlab.trust import open_nofollow, private_dir, untrusted_file_reason, write_private_atomic
from oomlab.worker.docker.engine import remove_container
from oomlab.worker.limits.base import CgroupBackend
from oomlab.worker.queue_janitor import QueueJanitor

# the run id of a lease that holds a worker's TMPDIR (oomlab.worker.temp_dir) and, for `oomlab agent
# --memory`, its cgroup: `oomlab agent` and `oomlab worker` sweep these when they start, `oomlab run`
# sweeps every stale lease
TEMP_DIR_LEASE = "tmpdir-"


def state_dir() -> str:
    """Where leases live: made 0700 when missing, refused (NoPermission) when another user owns it or
    could write to it, since a lease planted there would name what the sweep kills and deletes."""
    configured = os.environ.get("OOMLAB_STATE_DIR")
    if configured:
        path = configured
    elif os.geteuid() == 0:
        path = "/run/oomlab"
    else:
        path = os.path.join(os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/oomlab-{os.getuid()}", "oomlab")
    return private_dir(path, "state directory")


@dataclass
class Lease:
    run_id: str
    owner_pid: int
    owner_start: int | None
    cgroup: str | None = None
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    # (broker URL with its password masked, queue) on a service broker: a durable queue outlives a
    # SIGKILLed run otherwise; its janitor deletes it then, or a sweep given that broker's URL
    queues: list[tuple[str, str]] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)  # Docker backend: force-removed through the engine's API
    run_dir: str | None = None  # whose run.json the sweep marks `killed` if the owner died mid-run

    def __post_init__(self) -> None:
        self.janitors: list[QueueJanitor] = []  # not a field: a process of this run's, never saved

    @classmethod
    def for_this_process(cls, run_id: str, run_dir: str | None = None) -> Lease:
        pid = os.getpid()
        return cls(run_id=run_id, owner_pid=pid, owner_start=start_time_ticks(pid), run_dir=run_dir)

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
        """The lease keeps the URL without its password; a queue on a broker that needs one gets a
        janitor, which holds the password in memory only and deletes the queue if this run is killed."""
        self.queues.append((safe_url(broker_url), queue))
        self.save()
        if safe_url(broker_url) != broker_url:
            self.janitors.append(QueueJanitor.start(broker_url, queue, self.file))

    def set_cgroup(self, path: str) -> None:
        self.cgroup = path
        self.save()

    def save(self) -> None:
        write_private_atomic(self.file, json.dumps(asdict(self)))

    def release(self) -> None:
        for janitor in self.janitors:
            janitor.dismiss()
        self.janitors = []
        try:
            os.unlink(self.file)
        except FileNotFoundError:
            pass

    def owner_alive(self) -> bool:
        return self.owner_start is not None and alive_since(self.owner_pid) == self.owner_start

    def in_use(self) -> bool:
        """Not stale: its owner lives, or (a worker's lease, which names no process to kill) a process
        is still in its cgroup: a pool child that outlived the worker, never killed by a sweep."""
        if self.owner_alive():
            return True
        if not self.run_id.startswith(TEMP_DIR_LEASE) or not self.cgroup:
            return False
        return bool(CgroupBackend(os.path.dirname(self.cgroup), os.path.basename(self.cgroup)).pids())

    def clean(self, credentials: Iterable[str | None] = ()) -> list[str]:
        """Remove everything the lease names; returns what was actually found and removed. A queue
        whose broker needs a password none of `credentials` holds stays in the lease (see `settle`)."""
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
        left = []
        for broker_url, queue in self.queues:
            url = with_password(broker_url, credentials)
            if url is None:
                left.append((broker_url, queue))
                continue
            try:
                removed.extend(delete_queue(url, queue))  # only what was found on the broker
            except Exception:  # the broker is down: nothing more to do from here
                pass
        self.processes, self.paths, self.containers, self.cgroup, self.queues = [], [], [], None, left
        return removed

    def settle(self) -> None:
        """After a sweep's `clean`: gone when nothing is left, kept with the queues it could not reach."""
        if self.queues:
            self.save()
        else:
            self.release()


def with_password(masked_url: str, credentials: Iterable[str | None]) -> str | None:
    """The URL a lease names, with the password the sweeping run was given for that broker (leases
    never hold one); the URL itself when it needs none; None when the password is not at hand."""
    if MASK not in masked_url:
        return masked_url
    return next((url for url in credentials if url and safe_url(url) == masked_url), None)


def read_lease(path: str) -> Lease | None:
    """A lease file of this user's (never a symlink, nobody else's, nobody else can write it)."""
    try:
        with open_nofollow(path) as handle:
            if untrusted_file_reason(os.fstat(handle.fileno())):
                return None
            data = json.load(handle)
        return Lease(
            **{
                **data,
                "processes": [tuple(p) for p in data.get("processes", [])],
                "queues": [tuple(q) for q in data.get("queues", [])],
            }
        )
    except (OSError, ValueError, TypeError):
        return None


def delete_queue(broker_url: str, queue: str) -> list[str]:
    """Delete a run's queue on a service broker (at the end of the run, or after its SIGKILL), read
    back from the broker; returns what was found and removed."""
    from oomlab.worker.broker_cleanup import delete_run_queue

    return delete_run_queue(broker_url, queue)


def sweep_stale(credentials: Iterable[str | None] = (), prefix: str = "") -> list[str]:
    """Clean up after runs whose oomlab process died without cleaning up; returns what was removed.
    `credentials`: the broker URLs this run was given, whose passwords let it delete leased queues.
    `prefix`: only the leases whose run id starts with it (TEMP_DIR_LEASE: workers' TMPDIRs)."""
    removed: list[str] = []
    directory = state_dir()
    for name in sorted(os.listdir(directory)):
        if not (name.endswith(".json") and name.startswith(prefix)):
            continue
        lease = read_lease(os.path.join(directory, name))
        if lease is None or lease.in_use():
            continue
        removed.extend(lease.clean(credentials))
        if lease.run_dir and mark_killed(lease.run_dir, lease.owner_pid):
            removed.append(f"record {lease.run_dir}/run.json marked killed")
        lease.settle()
    return removed


UNFINISHED = ("starting", "running")


def mark_killed(run_dir: str, owner_pid: int) -> bool:
    """A run whose oomlab process died (SIGKILL, a crash) left its record saying `running`: the sweep
    that cleaned up after it says so in the record. Returns whether the record was changed."""
    path = os.path.join(run_dir, "run.json")
    try:
        with open_nofollow(path) as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("status") not in UNFINISHED:
        return False
    found = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    message = (
        f"oomlab's process (pid {owner_pid}) ended without finishing this run (SIGKILL or a crash); "
        f"found at {found} by the next run's sweep, which removed what it had left"
    )
    return settle_status(path, "killed", message)
