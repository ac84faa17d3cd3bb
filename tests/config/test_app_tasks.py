"""An app that autodiscovers its `@shared_task`s lists them before its worker starts: a new user's
`--profile proj.tasks.render` was refused with "the scenario's tasks: " (none) on the usual layout."""

from __future__ import annotations

import sys
import textwrap
import uuid

import pytest
from oomlab.config.app_tasks import registered_locally
from oomlab.config.profile import profile_names
from oomlab.errors import BadInput


@pytest.fixture
def autodiscovering_app(tmp_path):
    package = f"proj{uuid.uuid4().hex[:8]}"
    root = tmp_path / package
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "app.py").write_text(
        textwrap.dedent(
            f"""
            from celery import Celery
            app = Celery("{package}", broker="memory://", set_as_current=False)
            app.autodiscover_tasks(["{package}"])
            """
        )
    )
    (root / "tasks.py").write_text("from celery import shared_task\n\n@shared_task\ndef render(n):\n    return n\n")
    sys.path.insert(0, str(tmp_path))
    try:
        module = __import__(f"{package}.app", fromlist=["app"])
        yield package, module.app
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
            del sys.modules[name]


def test_autodiscovered_shared_tasks_are_listed_and_can_be_profiled(autodiscovering_app):
    package, app = autodiscovering_app
    assert f"{package}.tasks.render" in (registered_locally(app) or [])
    assert profile_names(f"{package}.tasks.render", app, "prefork", 1, "cgroup") == (f"{package}.tasks.render",)
    with pytest.raises(BadInput, match=f"{package}.tasks.render"):  # a wrong name lists the real ones
        profile_names(f"{package}.tasks.rendr", app, "prefork", 1, "cgroup")


def test_an_apps_own_queues_are_what_its_workers_consume():
    # the hand-over's worker listened on `celery` while the app sent to media.default and media.reports
    from celery import Celery
    from kombu import Queue
    from oomlab.config.app_tasks import app_queues

    app = Celery("media", broker="memory://", set_as_current=False)
    assert app_queues(app) == ["celery"]
    app.conf.task_default_queue = "media.default"
    app.conf.task_routes = {"media.tasks.render_report": {"queue": "media.reports"}, "media.tasks.zip": "media.zip"}
    app.conf.task_queues = [Queue("media.default"), Queue("media.audit")]
    assert app_queues(app) == ["media.default", "media.audit", "media.reports", "media.zip"]
    app.conf.task_routes = [{"media.tasks.render_report": {"queue": "media.reports"}}, lambda *a, **k: None]
    assert "media.reports" in app_queues(app)
