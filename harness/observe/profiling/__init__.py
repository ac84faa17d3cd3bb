"""Per-task memray profiles: a worker-side tracker around each chosen task (worker.py), the capture
read back into the record (read.py, collect.py), and the lines reports print (text.py).

memray writes its capture through a shared mapping of the file, so the pages are the kernel's the
moment a record is written: a task SIGKILLed by the OOM killer still leaves a readable capture up to
its last allocation."""

from __future__ import annotations

from typing import Any

NAMES_ENV = "OOMLAB_PROFILE"  # "all" or comma-separated task names (full, or the last dotted part)
DIR_ENV = "OOMLAB_PROFILE_DIR"  # where the pool child writes one capture per task execution
SUBDIR = "profiles"


def parse_names(text: str | None) -> tuple[str, ...]:
    """`--profile a,b` as a tuple; empty when profiling is off."""
    return tuple(name.strip() for name in (text or "").split(",") if name.strip())


def chosen(names: tuple[str, ...], task_name: str | None) -> bool:
    """Whether a task is profiled: "all", its full name, or the last part of a dotted name."""
    if not names or not task_name:
        return False
    return "all" in names or task_name in names or task_name.rsplit(".", 1)[-1] in names


def profile_names(text: str | None, app: Any, pool: str, concurrency: int, backend: str) -> tuple[str, ...]:
    """`--profile` checked against the scenario's tasks and the run: a clear sentence (BadInput) when
    it cannot work, rather than a run with nothing profiled."""
    from oomlab.errors import BadInput

    names = parse_names(text)
    if not names:
        return ()
    task_names = sorted(n for n in app.tasks if not n.startswith("celery."))
    unknown = [n for n in names if n != "all" and not any(chosen((n,), t) for t in task_names)]
    if unknown:
        raise BadInput(f"--profile: no task named {', '.join(unknown)}; the scenario's tasks: {', '.join(task_names)}")
    if pool == "threads" and concurrency > 1:
        raise BadInput("--profile needs one task per process: use the prefork pool (threads share one process)")
    if backend != "cgroup":
        raise BadInput("--profile works with a worker oomlab starts in its own cgroup (--placement cgroup)")
    require_memray()
    return names


def profile_dir(run_dir: str) -> str:
    """profiles/ in the run directory, made before the worker starts: the pool children write there."""
    import os

    path = os.path.join(run_dir, SUBDIR)
    os.makedirs(path, exist_ok=True)
    return path


def require_memray() -> None:
    from oomlab.errors import BadInput

    try:
        import memray  # noqa: F401
    except ImportError:
        raise BadInput("--profile needs memray: pip install 'oomlab[profile]'") from None


def wait_for_profiles(session: Any, timeout: float = 5.0) -> None:
    """After a WorkerSession settled: the tracker closes a capture just after the task's postrun, so
    give each chosen task's capture that moment to be read before a test's verdict is made."""
    import time

    names = session.config.profile
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = [t for t in session.tasks() if chosen(names, t.name) and t.executions and not t.profile]
        if not waiting:
            return
        time.sleep(0.05)
