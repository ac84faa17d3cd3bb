"""The hand-over names the user's real app: `celery -A myapp.celery:app`, from the scenario's app (the
module that defines it, not the scenario file that imported it) or the pytest/attach app reference."""

from __future__ import annotations

import sys

from oomlab.config.scenario import Scenario, load_scenario
from oomlab.workflows.recommend.handover import ClassSetting, handover_files, with_app

MIB = 2**20


def test_a_scenario_that_imports_its_app_hands_over_the_apps_own_module(tmp_path, monkeypatch):
    tmp_path.chmod(0o700)
    package = tmp_path / "myapp"
    package.mkdir(mode=0o700)
    (package / "__init__.py").write_text("")
    (package / "celery.py").write_text('from celery import Celery\n\napp = Celery("myapp", set_as_current=False)\n')
    scenario_file = tmp_path / "shop_load.py"
    scenario_file.write_text(
        "from myapp.celery import app\n\ndescription = 'x'\n\n\ndef plan(ctx):\n    raise NotImplementedError\n"
    )
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "modules", dict(sys.modules))
    scenario = load_scenario(str(scenario_file))
    assert scenario.app_target == "myapp.celery:app"
    [setting] = with_app([ClassSetting("worker", "celery", 2, 512 * MIB, "prefork", 3)], scenario.app_target)
    files = handover_files(scenario.name, [setting], "--concurrency 3")
    assert "#   celery -A myapp.celery:app worker --pool=prefork" in files["celeryconfig.py"]
    assert 'command: ["celery", "-A", "myapp.celery:app", "worker"' in files["compose.yaml"]
    assert '- "-A"\n            - "myapp.celery:app"' in files["k8s.yaml"]
    assert not any('"proj"' in text for text in files.values())


def test_a_built_in_scenario_and_a_pytest_app_name_their_own():
    assert load_scenario("noop").app_target == "oomlab.scenarios.noop:app"
    given = Scenario.for_app("oomlab.scenarios.noop:app")
    assert given.app_target == "oomlab.scenarios.noop:app"


def test_the_hand_over_consumes_the_apps_own_queues():
    # deployed as written, a worker on `celery` consumed nothing of an app that sends to media.*
    queues = ["media.default", "media.reports"]
    setting = ClassSetting("worker", ",".join(queues), 2, 512 * MIB, "prefork", 3, app="media.celery:app")
    files = handover_files("media", [setting], "--concurrency 3")
    assert "--queues=media.default,media.reports" in files["compose.yaml"]
    assert '"--queues=media.default,media.reports"' in files["k8s.yaml"]
    assert 'task_default_queue = "media.default"' in files["celeryconfig.py"]
