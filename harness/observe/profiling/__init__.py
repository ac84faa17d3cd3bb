"""Per-task memray profiles: a worker-side tracker for each pool child's life, with each chosen task's
window marked in its capture (oomlab.probe.profiler),
the capture read back into the record (read.py, collect.py; oomlab.run.profile_reader is the run's
hook that calls them), and the lines reports print (text.py).

memray writes its capture through a shared mapping of the file, so the pages are the kernel's the
moment a record is written: a task SIGKILLed by the OOM killer still leaves a readable capture up to
its last allocation."""

from __future__ import annotations

from typing import Any

from oomlab.probe.profile_choice import chosen

SUBDIR = "profiles"


def profile_dir(run_dir: str) -> str:
    """profiles/ in the run directory, made before the worker starts: the pool children write there."""
    import os

    from oomlab.trust import RunDirectory

    path = os.path.join(run_dir, SUBDIR)
    os.makedirs(path, exist_ok=True)
    return RunDirectory.for_writing(path, "profiles directory")


def wait_for_profiles(session: Any, timeout: float = 5.0) -> None:
    """After a WorkerSession settled: a live pool child's capture is read at most every second or so,
    so give each chosen task's window that moment to be read before a test's verdict is made."""
    import time

    names = session.config.profile
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = [t for t in session.tasks() if chosen(names, t.name) and t.executions and not t.profile]
        if not waiting:
            return
        time.sleep(0.05)
