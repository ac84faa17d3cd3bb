"""The suite's own check that no worker left a temp directory behind: billiard's pymp-* in /tmp, or a
worker's private TMPDIR (oomlab.worker.temp_dir), made during the session and still there at its end,
after the sweep a next `oomlab run` would do. Run once, by the process that ran the session (xdist's
controller), and blind to directories of runs still going: leased to a live owner, or the TMPDIR of a
live process."""

from __future__ import annotations

import glob
import os
import tempfile

from oomlab.worker.leftovers import read_lease, state_dir, sweep_stale
from oomlab.worker.temp_dir import PREFIX

PATTERNS = (f"{PREFIX}*", "pymp-*")


def present() -> set[str]:
    roots = {"/tmp", tempfile.gettempdir()}
    return {path for root in roots for pattern in PATTERNS for path in glob.glob(os.path.join(root, pattern))}


def in_use() -> tuple[set[str], set[str]]:
    """(paths a live run owns or a live process has for TMPDIR; the temp directories of live Celery
    workers, whose pymp-* there are not left behind yet)."""
    owned: set[str] = set()
    celery_tmp: set[str] = set()
    directory = state_dir()
    for name in os.listdir(directory):
        lease = read_lease(os.path.join(directory, name)) if name.endswith(".json") else None
        if lease is not None and lease.owner_alive():
            owned.update(lease.paths)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                env = dict(item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item)
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except OSError:
            continue
        tmp = os.path.normpath(env.get(b"TMPDIR", b"/tmp").decode(errors="replace"))
        owned.add(tmp)
        if b"celery" in cmdline:
            celery_tmp.add(tmp)
    return owned, celery_tmp


def left_behind(at_start: set[str]) -> list[str]:
    sweep_stale()  # what the next run would remove is not left behind
    owned, celery_tmp = in_use()
    return sorted(
        path
        for path in present() - at_start
        if path not in owned
        and not (os.path.basename(path).startswith("pymp-") and os.path.dirname(path) in celery_tmp)
    )
