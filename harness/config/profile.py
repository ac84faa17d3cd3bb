"""--profile's task names, checked against the scenario and the run before anything starts: a clear
sentence (BadInput) when profiling cannot work, rather than a run with nothing profiled."""

from __future__ import annotations

from oomlab.config.app_tasks import registered_locally
from oomlab.errors import BadInput
from oomlab.probe.profile_choice import chosen, parse_names


def profile_names(text: str | None, app, pool: str, concurrency: int, backend: str) -> tuple[str, ...]:
    """The chosen task names; empty when profiling is off."""
    names = parse_names(text)
    if not names:
        return ()
    task_names = registered_locally(app)
    if task_names is None:
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


def require_memray() -> None:
    try:
        import memray  # noqa: F401
    except ImportError:
        raise BadInput("--profile needs memray: pip install 'oomlab[profile]'") from None
