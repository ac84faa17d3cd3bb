"""The contract between `oomlab worker` and an `oomlab run --attach` on the same share directory:
DIR/worker.json says what the worker runs and where, DIR/probe.jsonl is its probe's record and
DIR/worker.log a copy of its log (what Celery says of its children's deaths).

The worker writes worker.json as it starts (a restarted worker writes it anew, with its new pid);
the attaching run reads it and follows the worker's settings rather than its own flags.

worker.json is data from another process, possibly another container: the share directory must be
one nobody else can write, no file in it is opened through a symlink, the attaching run imports only
the scenario on its own command line (worker.json must name the same one), and the settings it takes
from worker.json are checked before they reach its Celery client (oomlab.trust, docs/security.md).
worker.json holds the broker URL the attached run connects to, password included: it is 0600 in a
directory of the user's own, and nothing the attached run writes shows that password."""

from __future__ import annotations

import json
import os
import stat
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from oomlab.config.celery_safety import check_share_settings
from oomlab.config.scenario import Scenario, scenario_name
from oomlab.errors import BadInput, NoPermission, WorkerStartFailed
from oomlab.record.reading import MAX_SHARE_BYTES, open_regular, parse_json, read_regular
from oomlab.record.redact import safe_url
from oomlab.trust import (
    RefusedLink,
    check_trusted_dir,
    create_private,
    private_dir,
    results_umask,
    write_private_atomic,
)

COPY_LINE_BYTES = 1 << 20  # a line longer than this is copied in pieces (masked piece by piece)
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
        """The one file oomlab writes a password into: the attached run connects with these URLs."""
        write_private_atomic(os.path.join(directory, SHARE_FILE), json.dumps(asdict(self), indent=1))

    @staticmethod
    def prepare(directory: str) -> str:
        """`oomlab worker`'s side: the share directory (made 0700, or refused when another user could
        write it), and its probe record and log new and empty, never written through a planted link."""
        share_dir = private_dir(directory, "share directory")
        for name in (PROBE_FILE, LOG_FILE):
            os.close(create_private(os.path.join(share_dir, name)))
        return share_dir

    @classmethod
    def wait_for(cls, directory: str, timeout: float) -> WorkerShare:
        """The share's worker once it is running and visible here. A worker.json left by an earlier
        worker (a Compose volume keeps it) is waited past until the new worker rewrites it."""
        if not os.path.isdir(directory):
            raise BadInput(f"--attach {directory}: no such directory (the worker's --share directory)")
        check_trusted_dir(directory, "share directory")
        path = os.path.join(directory, SHARE_FILE)
        deadline = time.monotonic() + timeout
        share = None
        while True:
            share = cls._load(path) if os.path.lexists(path) else None
            if share is not None and share.visible():
                _refuse_links(directory)
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
            data = parse_json(read_regular(path, MAX_SHARE_BYTES, follow=False))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            share = cls(**data)
        except RefusedLink:
            raise NoPermission(f"refusing {path}: it is a symbolic link") from None
        except OSError as exc:
            raise BadInput(f"cannot read {path}: {exc.strerror}") from None
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise BadInput(f"{path} is not a worker share written by this oomlab version ({exc})") from None
        share.check(path)
        return share

    def check(self, path: str) -> None:
        """Every field has the type this version writes, the URLs name a broker Celery knows, and the
        Celery settings are allow-listed plain values that would not make the attached run's client
        import or unpickle anything (BadInput or NoPermission, in one sentence, otherwise)."""
        for name, kind in _FIELD_TYPES.items():
            if not isinstance(getattr(self, name), kind):
                raise BadInput(f"{path} is not a worker share written by this oomlab version ({name})")
        for url in (self.broker, self.result_backend):
            if not url.startswith(_BROKER_SCHEMES):
                raise BadInput(safe_url(f"{path} names a broker oomlab does not use: {url}"))
        check_share_settings(self.celery_conf, path)

    def check_runs(self, scenario: Scenario, directory: str) -> None:
        """The share's worker runs `scenario`, the one on this run's own command line: compared as
        data (the same kind, built-in or file, and the same name; its parameters and variant are the
        scenario's), never by importing what worker.json names."""
        same_kind = self.scenario.endswith(".py") == scenario.module_ref.endswith(".py")
        if not same_kind or scenario_name(self.scenario) != scenario.name:
            raise BadInput(f"the worker in {directory} runs {self.scenario}, not {scenario.name}")
        unknown = sorted(set(self.params) - {param.name for param in scenario.params})
        if unknown:
            raise BadInput(f"the worker in {directory} gives {scenario.name} a parameter it has not: {unknown[0]!r}")
        scenario.variant(self.variant)

    def visible(self) -> bool:
        """The pid in worker.json is this worker here too (not another process that has that number in
        this pid namespace, such as our own container's pid 1): its command line names the worker."""
        try:
            with open(f"/proc/{self.pid}/cmdline", "rb") as handle:
                return self.hostname.encode() in handle.read().split(b"\0")
        except OSError:
            return False


def _refuse_links(directory: str) -> None:
    """The probe record and log the run reads are regular files: a symlink could be root's file, a
    FIFO would block whoever opens it."""
    for name in (PROBE_FILE, LOG_FILE):
        try:
            mode = os.lstat(os.path.join(directory, name)).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):
            raise NoPermission(f"refusing the share {directory}: its {name} is a symbolic link")
        if not stat.S_ISREG(mode):
            raise NoPermission(f"refusing the share {directory}: its {name} is not a regular file")


def copy_share_file(share_dir: str, name: str, run_dir: str) -> None:
    """A share file copied into the run directory: opened without following a symlink or blocking (a
    regular file only), copied a line at a time (a 1 GiB log never sits in memory whole), written as a
    new private file, with any password in the log masked."""
    source = os.fdopen(open_regular(os.path.join(share_dir, name), follow=False), "rb")
    fd = create_private(os.path.join(run_dir, name))
    with source, os.fdopen(fd, "wb") as target:
        os.fchmod(target.fileno(), 0o666 & ~results_umask())
        while line := source.readline(COPY_LINE_BYTES):
            target.write(safe_url(line.decode(errors="replace")).encode() if name == LOG_FILE else line)


_BROKER_SCHEMES = ("redis://", "rediss://", "redis+socket://", "amqp://", "amqps://", "pyamqp://", "sentinel://")
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "scenario": str,
    "variant": str,
    "params": dict,
    "concurrency": int,
    "pool": str,
    "broker": str,
    "result_backend": str,
    "queue": str,
    "hostname": str,
    "pid": int,
    "cgroup_dir": str,
    "cgroup_path": str,
    "cgroup_version": int,
    "celery_conf": dict,
    "started_wall": (int, float),
}
