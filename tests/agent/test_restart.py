"""HUP with a real worker started by a `celery` script (Celery's restart execs sys.argv, which
`python -m celery` cannot run again): Celery restarts by closing every descriptor but stdio and
exec'ing itself (same pid, new image); the agent's probe keeps its socket, so the restarted worker's
kills are attributed and repaired as before."""

from __future__ import annotations

import signal
import sys
import time

import pytest

from tests.agent.conftest import wait_oomkilled, wait_state, worker_command

pytestmark = [pytest.mark.integration, pytest.mark.services]


def test_after_hup_an_oom_killed_task_still_reads_failure_oomkilled(agent_run, tmp_path):
    script = tmp_path / "celery"  # what pip installs as `celery`, for this interpreter
    script.write_text(f"#!{sys.executable}\nimport sys\nfrom celery.__main__ import main\nsys.exit(main())\n")
    script.chmod(0o755)
    with agent_run() as run:
        process = run.start("--memory", "256MiB", worker=[str(script), *worker_command()[3:]])
        run.wait_ready()
        app = run.app()
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while run.text().count(" ready.") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert run.text().count(" ready.") == 2, run.text()  # restarted in place, not stopped
        assert process.poll() is None

        result = app.hog.delay(600)
        wait_state(result, ("STARTED",), timeout=30)
        _took, fresh = wait_oomkilled(result)
        assert "killed by the kernel's OOM killer" in str(fresh.result) and "pool child pid" in str(fresh.result)
        assert "no task known" not in run.text(), run.text()
        assert app.small.delay().get(timeout=30) == "ok"
        assert run.stop() == 0
