"""Celery settings that choose code: a serializer other than json or msgpack (pickle also goes by a
MIME name) lets whoever can publish to the broker run code as root, and a "module:Class" setting
from a worker share makes the attached run import it. Serializers are allow-listed wherever a
setting comes from; a share's settings are allow-listed by name and type."""

from __future__ import annotations

import pytest

from tests.security.test_share import worker_json

PICKLE = "application/x-python-serialize"


@pytest.mark.parametrize(
    "setting",
    [
        f"event_serializer={PICKLE}",
        "task_serializer=pickle",
        "result_serializer=yaml",
        f'accept_content=["json", "{PICKLE}"]',
        "result_accept_content=application/x-yaml",
    ],
)
def test_a_serializer_that_runs_code_is_refused_on_the_command_line(oomlab, setting):
    result = oomlab("run", "alloc", "--tasks", "1", "--celery", setting, timeout=30)
    assert result.code == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "oomlab accepts only json or msgpack" in result.stderr


def test_a_serializer_that_runs_code_is_refused_in_a_scenarios_celery_conf(oomlab, tmp_path):
    folder = tmp_path / "scenarios"
    folder.mkdir(mode=0o700)
    scenario = folder / "pickled.py"
    scenario.write_text(
        "from oomlab.scenarios.alloc import DEFAULTS, PARAMS, app, plan  # noqa: F401\n"
        f"CELERY_CONF = {{'event_serializer': {PICKLE!r}}}\n"
    )
    result = oomlab("run", str(scenario), "--tasks", "1", timeout=30)
    assert result.code == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "CELERY_CONF: event_serializer=" in result.stderr


@pytest.mark.parametrize(
    "celery_conf",
    [
        {"event_serializer": PICKLE},  # what a check for the words "pickle" and "yaml" let through
        {"result_accept_content": ["json", "application/x-yaml"]},
        {"broker_transport": "this:Transport"},  # Celery imports it
        {"task_routes": "planted.routes:Router"},
        {"task_annotations": "planted.annotations:Annotation"},
        {"worker_consumer": "planted:Consumer"},
        {"imports": ["planted"]},
        {"broker_transport_options": {"connection_class": {"nested": "planted:Connection"}}},
        {"worker_prefetch_multiplier": "planted:Thing"},  # the right name, the wrong type
    ],
)
def test_worker_json_settings_are_allow_listed(oomlab, tmp_path, spawn_as, celery_conf):
    share = tmp_path / "share"
    share.mkdir(mode=0o700)
    lookalike = spawn_as(["oomlab-worker-alloc@planted", "300"], executable="/bin/sleep")
    (share / "worker.json").write_text(worker_json("alloc", lookalike.pid, celery_conf=celery_conf))
    result = oomlab("run", "alloc", "--attach", str(share), "--start-timeout", "3", timeout=30)
    name = next(iter(celery_conf))
    assert result.code == 3, result.stderr
    assert result.stderr.count("\n") == 1 and f"refusing the Celery setting {name} from" in result.stderr
