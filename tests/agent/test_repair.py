"""The agent's state repair with a real worker under a real limit: a task the kernel OOM-kills
reads FAILURE with OOMKilled through AsyncResult within a second of starting, and stays so after
Celery's own late WorkerLostError."""

from __future__ import annotations

import re
import time

import pytest

from tests.agent.conftest import agent_lines, wait_oomkilled, wait_state
from tests.conftest import TIME_SCALE

pytestmark = [pytest.mark.integration, pytest.mark.services]


def test_an_oom_killed_task_reads_failure_oomkilled_within_a_second(agent_run):
    with agent_run() as run:
        run.start("--memory", "256MiB")
        run.wait_ready()
        app = run.app()
        result = app.hog.delay(600)
        wait_state(result, ("STARTED",), timeout=30)
        took, fresh = wait_oomkilled(result)  # Celery's own WorkerLostError may land first
        message = str(fresh.result)
        assert "killed by the kernel's OOM killer" in message and "limit 256.0 MiB" in message
        assert "pool child pid" in message and "with its memory group at its limit (group peak" in message
        assert "the task's own peak" in message
        assert message.startswith("task "), message  # its type is shown beside it: not "OOMKilled: OOMKilled: ..."
        assert took < 1.0 * TIME_SCALE, f"{took:.3f} s from STARTED to FAILURE"

        # Celery's main process notices its lost child later and stores WorkerLostError: the agent
        # writes its error again after it
        deadline = time.monotonic() + 30
        while "WorkerLostError" not in run.text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "WorkerLostError" in run.text()
        time.sleep(0.5)
        assert type(app.app.AsyncResult(result.id).result).__name__ == "OOMKilled"

        # the worker goes on: the next task runs
        assert app.small.delay().get(timeout=30) == "ok"
        assert run.stop() == 0  # TERM: Celery's warm shutdown, and the worker's exit code is the agent's
        said = agent_lines(run.text())
        # the kill's line says what was repaired in words, and the last line sums the session up
        assert any(line.endswith("; marked FAILURE in the result backend, task-failed sent") for line in said), said
        assert re.fullmatch(
            r"oomlab agent: the worker exited with 0 after [\d.]+ s; 1 kill\(s\) seen, 1 task\(s\) marked FAILURE, "
            r"0 dead-lettered",
            said[-1],
        ), said
