"""The contract between `oomlab worker` and an `oomlab run --attach` on the same share directory:
DIR/worker.json says what the worker runs and where, DIR/probe.jsonl is its probe's record and
DIR/worker.log a copy of its log (what Celery says of its children's deaths).

The worker writes worker.json as it starts (a restarted worker writes it anew, with its new pid);
the attaching run reads it and follows the worker's settings rather than its own flags."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.errors import BadInput, NoPermission, WorkerStartFailed
from harness.record import write_json_atomic

SHARE_FILE = "worker.json"
PROBE_FILE = "probe.jsonl"
LOG_FILE = "worker.log"


@dataclass(frozen=True)
class WorkerShare:
    scenario: str  # the scenario's name or module path, as `oomlab worker` was given it
    variant: str
    params: dict[str, Any]
    concurrency: int
    pool: str
    broker: str
    result_backend: str
    queue: str
    hostname: str
    pid: int  # the worker's main process (the same in the attaching oomlab's pid namespace)
    cgroup_dir: str  # its memory cgroup's directory, as the worker sees it
    cgroup_path: str  # its cgroup path, as the worker's cgroup namespace shows it
    cgroup_version: int
    celery_conf: dict[str, Any] = field(default_factory=dict)  # the user's settings over the scenario's
    started_wall: float = 0.0

    def save(self, directory: str) -> None:
        write_json_atomic(os.path.join(directory, SHARE_FILE), asdict(self))

    @classmethod
    def wait_for(cls, directory: str, timeout: float) -> WorkerShare:
        """The share's worker once it is running and visible here. A worker.json left by an earlier
        worker (a Compose volume keeps it) is waited past until the new worker rewrites it."""
        if not os.path.isdir(directory):
            raise BadInput(f"--attach {directory}: no such directory (the worker's --share directory)")
        path = os.path.join(directory, SHARE_FILE)
        deadline = time.monotonic() + timeout
        share = None
        while True:
            share = cls._load(path) if os.path.exists(path) else None
            if share is not None and share.visible():
                return share
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if share is None:
            raise WorkerStartFailed(
                f"no worker wrote {path} within {timeout:.0f} s; start one with "
                f"`oomlab worker SCENARIO --share {directory}`"
            )
        raise NoPermission(
            f"the worker (pid {share.pid} in its own view) is not visible here: run oomlab in the "
            f"worker's pid namespace (Compose: pid: host on both services)"
        )

    @classmethod
    def _load(cls, path: str) -> WorkerShare:
        try:
            with open(path) as handle:
                return cls(**json.load(handle))
        except (ValueError, TypeError) as exc:
            raise BadInput(f"{path} is not a worker share written by this oomlab version ({exc})") from None

    def visible(self) -> bool:
        """The pid in worker.json is this worker here too (not another process that has that number in
        this pid namespace, such as our own container's pid 1): its command line names the worker."""
        try:
            with open(f"/proc/{self.pid}/cmdline", "rb") as handle:
                return self.hostname.encode() in handle.read().split(b"\0")
        except OSError:
            return False
