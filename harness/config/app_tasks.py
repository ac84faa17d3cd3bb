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
