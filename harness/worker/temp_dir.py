"""A worker's own TMPDIR, the one rule for every worker oomlab or its benchmarks start: billiard
makes a pymp-* directory there, which a worker killed by SIGKILL leaves behind. In a 0700 directory
of oomlab's, removed when the worker is done, nothing of the worker's is left in the user's temp
directory. Always leased (the starter's run lease, or one of the directory's own), so that when
whoever would remove it is killed too (a SIGKILLed agent, a whole group killed at once), the
leftovers sweep (oomlab.worker.leftovers) still does."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from oomlab.errors import NoPermission
from oomlab.probe.procfs import start_time_ticks
from oomlab.trust import temp_dir
from oomlab.worker.leftovers import TEMP_DIR_LEASE, Lease, sweep_stale

PREFIX = "oomlab-worker-"
# in the background (so no child of the worker's: init's), reads fd $1 to its end (every process holding
# the pipe's other end gone), then removes $0 and the lease file $2
_REMOVE_AT_EOF = '(while read -r _ <&"$1"; do :; done; exec rm -rf -- "$0" ${2:+"$2"}) &'


def private_temp_dir(lease: Lease | None = None) -> str:
    """A new 0700 directory, named in `lease` before it exists: a kill between the two leaves
    nothing the sweep would not find."""
    while True:
        path = os.path.join(temp_dir(), PREFIX + secrets.token_hex(6))
        if lease is not None:
            lease.add_path(path)
        try:
            os.mkdir(path, 0o700)  # never an existing one (another user's, planted in a shared /tmp)
            return path
        except FileExistsError:
            if lease is not None:  # someone else's: never named for the sweep to remove
                lease.paths.remove(path)
                lease.save()


def leased_temp_dir() -> tuple[str, Lease | None]:
    """A worker's TMPDIR for a starter with no run lease (`oomlab agent`, `oomlab worker`), with a
    lease of its own, owned by this process until `hand_over` names the worker: the sweep removes
    it once its owner is gone, however it went. Unleased (None) when the state directory is not
    usable, as it is then for no lease of this user's. Sweeps the stale ones of its kind first: a
    container restarted after a whole-group kill, a host's next agent, leave none to pile up."""
    try:
        sweep_stale(prefix=TEMP_DIR_LEASE)
        lease = Lease.for_this_process(f"{TEMP_DIR_LEASE}{secrets.token_hex(6)}")
        lease.save()
    except (OSError, NoPermission):
        return private_temp_dir(), None
    return private_temp_dir(lease), lease


def hand_over(lease: Lease | None, pid: int) -> None:
    """The worker (`pid`) owns the directory now: it stays while the worker runs, even with its
    starter SIGKILLed, and is swept once the worker is gone."""
    if lease is not None:
        lease.owner_pid, lease.owner_start = pid, start_time_ticks(pid)
        lease.save()


def hand_over_in_child(lease: Lease | None) -> None:
    """`hand_over` from the forked child before its exec (a preexec step): a starter SIGKILLed
    between the fork and its own `hand_over` leaves a lease that names the worker, not itself. A
    failure is left to the starter's `hand_over`: the exec must not fail for it."""
    try:
        hand_over(lease, os.getpid())
    except Exception:
        pass


def release_temp_dir(path: str, lease: Lease | None) -> None:
    remove_temp_dir(path)
    if lease is not None:
        lease.release()


def remove_temp_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)  # fd-based on Linux: a link planted inside is not followed


def removed_after_exec(path: str, lease: Lease | None) -> None:
    """For a process about to become the worker (exec), which can remove nothing after: a small shell
    in a session of its own, not the worker's child, removes `path` (and its lease) once the worker
    and every pool child it forked are gone (they hold a pipe's write end, inherited through the
    exec). The shell is in the worker's cgroup: a kill of the whole group takes it too, and the
    lease is what is left then."""
    read, write = os.pipe()
    subprocess.run(
        ["/bin/sh", "-c", _REMOVE_AT_EOF, path, str(read), lease.file if lease is not None else ""],
        pass_fds=(read,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
        check=False,
    )
    os.close(read)
    os.set_inheritable(write, True)


@contextmanager
def worker_temp_dir(lease: Lease | None = None) -> Iterator[str]:
    """A private TMPDIR for a worker that is stopped inside the block; removed after it."""
    path = private_temp_dir(lease)
    try:
        yield path
    finally:
        remove_temp_dir(path)
