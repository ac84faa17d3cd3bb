"""A memory cgroup of the benchmark's own, leased like a run's so nothing outlives an interrupted bench."""

from __future__ import annotations

import secrets
from contextlib import contextmanager

from oomlab.worker.leftovers import Lease
from oomlab.worker.limits import open_cgroup_backend


@contextmanager
def leased_group(prefix: str, limit_bytes: int):
    """(lease, group): the group exists with `limit_bytes`; every process in it dies on the way out."""
    run_id = f"{prefix}-{secrets.token_hex(3)}"
    lease = Lease.for_this_process(run_id)
    lease.save()
    group = open_cgroup_backend(run_id)
    try:
        group.create(limit_bytes, "process")
        lease.set_cgroup(group.path)
        yield lease, group
    finally:
        group.kill_all()
        group.remove()
        lease.release()
