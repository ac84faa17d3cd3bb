"""A worker's own TMPDIR, the one rule for every worker oomlab or its benchmarks start: billiard
makes a pymp-* directory there, which a worker killed by SIGKILL leaves behind. In a 0700 directory
of oomlab's, removed when the worker is done (leased, where the starter has a lease, so a sweep
removes a SIGKILLed starter's), nothing of the worker's is left in the user's temp directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from oomlab.worker.leftovers import Lease

PREFIX = "oomlab-worker-"
# in the background (so no child of the worker's: init's), reads fd $1 to its end (every process holding
# the pipe's other end gone), then removes $0
_REMOVE_AT_EOF = '(while read -r _ <&"$1"; do :; done; exec rm -rf -- "$0") &'


def private_temp_dir(lease: Lease | None = None) -> str:
    path = tempfile.mkdtemp(prefix=PREFIX)
    if lease is not None:
        lease.add_path(path)
    return path


def remove_temp_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)  # fd-based on Linux: a link planted inside is not followed


def removed_after_exec(path: str) -> None:
    """For a process about to become the worker (exec), which can remove nothing after: a small shell
    in a session of its own, not the worker's child, removes `path` once the worker and every pool
    child it forked are gone (they hold a pipe's write end, inherited through the exec)."""
    read, write = os.pipe()
    subprocess.run(
        ["/bin/sh", "-c", _REMOVE_AT_EOF, path, str(read)],
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
