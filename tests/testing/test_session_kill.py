"""WorkerSession: the task assert_oom_killed returns reads `killed` as soon as the kill is attributed,
not `stuck` while Celery has yet to notice the lost child."""

from __future__ import annotations

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
