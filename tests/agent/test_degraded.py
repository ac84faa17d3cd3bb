"""What the agent cannot have, said in one line while the worker runs on: a memory cgroup it cannot
read (kills are still seen through the pool children's pidfds), and a broker or result backend that
is down when the worker starts (Celery retries as configured; the agent repairs once it is back)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest

from tests.agent.conftest import REDIS, agent_lines, wait_oomkilled, wait_state, worker_command
from tests.conftest import TIME_SCALE

pytestmark = [pytest.mark.integration, pytest.mark.services]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreadable_cgroup_is_one_line_and_kills_are_still_seen(agent_run):
    """The agent in a mount namespace where /sys/fs/cgroup is an empty tmpfs: no group to read."""
    hide = ["unshare", "--mount", "sh", "-c", 'mount -t tmpfs none /sys/fs/cgroup && exec "$@"', "sh"]
    with agent_run() as run:
        process = run.start(worker=worker_command("-n", run.node), wrap=hide)
        run.wait_ready()
        said = [line for line in agent_lines(run.text()) if "unwatched" in line]
        assert len(said) == 1 and "the worker runs unwatched by the cgroup" in said[0], run.text()
        assert "peaks are unknown" in run.text()  # not "from the cgroup": there is none to read
        app = run.app()
        assert app.hog.delay(1).get(timeout=30) == 2**20  # the worker runs tasks as ever
        sleeper = app.app.send_task("user_app.nap", args=[60], ignore_result=False)
        wait_state(sleeper, ("STARTED",), timeout=30)
        pid = sleeper.info["pid"]  # Celery's STARTED meta names the pool child
        os.kill(pid, signal.SIGKILL)
        took, repaired = wait_oomkilled(sleeper)  # Celery's own WorkerLostError may land first
        assert "killed by SIGKILL" in str(repaired.result), repaired.result
        assert took < 1.0 * TIME_SCALE, f"{took:.3f} s from the kill to the agent's FAILURE"
        assert process.poll() is None


@pytest.mark.parametrize("down", ["broker", "backend"])
def test_a_broker_or_backend_down_at_start_the_worker_runs_on(agent_run, tmp_path, down):
    port = _free_port()
    late = f"redis://127.0.0.1:{port}/0"
    urls = {"broker": REDIS, "backend": REDIS, down: late}
    with agent_run(broker=urls["broker"], backend=urls["backend"]) as run:
        run.start("--memory", "256MiB", worker=worker_command("-n", run.node))
        if down == "broker":  # Celery retries the connection; the worker is not ready until it is back
            deadline = time.monotonic() + 30
            while "Cannot connect to" not in run.text() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert "Cannot connect to" in run.text(), run.text()
        else:  # the worker is ready; the agent says once that it cannot reach the backend yet
            run.wait_ready()
            deadline = time.monotonic() + 30
            while "result backend is unreachable" not in run.text() and time.monotonic() < deadline:
                time.sleep(0.05)
            said = [line for line in agent_lines(run.text()) if "unreachable" in line]
            assert len(said) == 1, run.text()
        assert run.process is not None and run.process.poll() is None
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
        )
        try:
            run.wait_ready()
            app = run.app()
            result = app.hog.delay(600)
            wait_state(result, ("STARTED",), timeout=60)
            wait_state(result)
            # Celery's own WorkerLostError may land first (the agent imports Celery at its first repair),
            # and an AsyncResult keeps the first ready state it read: read afresh until the agent's is there
            deadline = time.monotonic() + 5
            while type(app.app.AsyncResult(result.id).result).__name__ != "OOMKilled" and time.monotonic() < deadline:
                time.sleep(0.05)
            final = app.app.AsyncResult(result.id).result
            assert type(final).__name__ == "OOMKilled", (final, run.text())
        finally:
            run.stop()
            server.terminate()
            server.wait(timeout=30)
