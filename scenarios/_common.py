"""What built-in scenarios share: an app with oomlab's defaults and memory that is really touched."""

from __future__ import annotations

import json
import os

from celery import Celery
from oomlab.trust import create_private

MIB = 1024 * 1024


def scenario_app(name: str) -> Celery:
    """A Celery app whose broker and backend oomlab sets per run; STARTED is tracked so a task
    caught by a whole-worker kill is visible as stuck rather than pending."""
    app = Celery(f"oomlab-{name}")
    app.conf.update(task_track_started=True, result_expires=3600, broker_connection_retry_on_startup=True)
    return app


def touched_bytes(mib: float) -> bytes:
    """`mib` MiB whose every page is written (b'\\x01' * n memsets), so it is resident, not lazy."""
    return b"\x01" * int(mib * MIB)


def worker_param(name: str, default):
    """A --param value inside the worker (oomlab passes the run's resolved parameters as JSON)."""
    return json.loads(os.environ.get("OOMLAB_PARAMS", "{}")).get(name, default)


def worker_variant() -> str | None:
    """The variant this worker runs (None outside a worker, e.g. while oomlab loads the scenario)."""
    return os.environ.get("OOMLAB_VARIANT") or None


def cached_input(path: str, make) -> str:
    """Generate an input file once per results directory: `make(tmp_path)` writes it, a rename
    publishes it, so parallel runs never read a half-written file."""
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        os.close(create_private(tmp))  # new and ours: whatever was planted there is unlinked, not written through
        make(tmp)
        os.replace(tmp, path)
    return path


def grow_until_killed(limit_bytes: int, chunk_mib: int = 8) -> None:
    """Touch `chunk_mib` MiB at a time until the kernel kills this process; raise if it grew to 4x
    the limit without being killed (the limit is not in force)."""
    held: list[bytes] = []
    while len(held) * chunk_mib * MIB < 4 * limit_bytes:
        held.append(touched_bytes(chunk_mib))
    raise RuntimeError(f"grew to 4x the {limit_bytes} byte limit without being killed: is the limit in force?")
