"""The task names a Celery app registers in oomlab's own process, as its worker would see them: the
app's `imports`/`include` and autodiscovered modules (`@shared_task`s in `proj/tasks.py`) are imported
first, as the worker does at start; without that an app that autodiscovers lists no task at all."""

from __future__ import annotations

from typing import Any


def registered_locally(app: Any) -> list[str] | None:
    """Sorted, Celery's own `celery.*` left out; None when importing the app's modules failed (the
    worker imports them again and says what failed there)."""
    try:
        app.loader.import_default_modules()
        return sorted(name for name in app.tasks if not name.startswith("celery."))
    except Exception:
        return None


def app_queues(app: Any) -> list[str]:
    """The queues an app's own settings send to: its default queue first, then every queue its
    `task_queues` declares and its `task_routes` (a dict, or a list of dicts) names. A router
    function cannot be read without calling it, so its queues are not listed."""
    conf = app.conf
    found = [conf.task_default_queue or "celery"]
    for queue in conf.task_queues or ():
        found.append(getattr(queue, "name", None) or str(queue))
    routes = conf.task_routes
    for table in routes if isinstance(routes, list | tuple) else [routes]:
        if isinstance(table, dict):
            for target in table.values():
                name = target.get("queue") if isinstance(target, dict) else target if isinstance(target, str) else None
                if isinstance(name, str) and name:
                    found.append(name)
    return list(dict.fromkeys(found))
