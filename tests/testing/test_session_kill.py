"""WorkerSession: the task assert_oom_killed returns reads `killed` as soon as the kill is attributed,
not `stuck` while Celery has yet to notice the lost child; a result dropped after the session costs nothing."""

from __future__ import annotations

import time

import pytest
from oomlab import WorkerOptions, WorkerSession, assert_oom_killed

pytestmark = pytest.mark.integration


def test_the_task_assert_oom_killed_returns_reads_killed(tmp_path):
    from oomlab.scenarios.alloc import allocate

    options = WorkerOptions(app="oomlab.scenarios.alloc:app", memory="192MiB", results_dir=str(tmp_path))
    with WorkerSession(options) as session:
        task = assert_oom_killed(allocate.delay(400, 0), session=session)
        assert task.outcome == "killed", repr(task)
        assert any(run.killed for run in task.executions)


def test_a_result_dropped_after_the_session_stopped_returns_at_once(tmp_path):
    """A collected result unsubscribes; with the run's broker gone Celery's redis backend retried that
    for ~20 s (a user's pytest hung at exit): the session closes the subscription as it stops."""
    from oomlab.scenarios.alloc import app

    options = WorkerOptions(app="oomlab.scenarios.alloc:app", memory="192MiB", results_dir=str(tmp_path))
    with WorkerSession(options):
        result = app.send_task("alloc.nowhere")  # never finishes: still subscribed when the session ends
    started = time.monotonic()
    del result
    assert time.monotonic() - started < 1
