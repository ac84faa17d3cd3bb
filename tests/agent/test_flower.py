"""Real Flower (from PyPI, in the test extra) sees the task the agent repaired as FAILURE with the
agent's OOMKilled, through its HTTP API: the agent's `task-failed` event is what tells it, within
a second of the kill, not a heartbeat timeout later."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.agent.conftest import HERE, wait_state, worker_command
from tests.conftest import TIME_SCALE

pytestmark = [pytest.mark.integration, pytest.mark.services]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _task_info(port: int, task_id: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/task/info/{task_id}", timeout=5) as response:
            return json.load(response)
    except (urllib.error.HTTPError, OSError):  # 404 until Flower has heard of the task; refused while it starts
        return None


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_flower_sees_the_repaired_task_as_failure(agent_run, tmp_path):
    port = _free_port()
    with agent_run() as run:
        env = dict(run.env, FLOWER_UNAUTHENTICATED_API="true")
        with open(tmp_path / "flower.log", "wb") as log:
            flower = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "user_app", "flower", "--address=127.0.0.1", f"--port={port}"],
                env=env,
                cwd=HERE,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            run.start("--memory", "256MiB", worker=worker_command("-n", run.node))
            run.wait_ready()
            deadline = time.monotonic() + 30
            while not _ready(port) and time.monotonic() < deadline:
                assert flower.poll() is None, (tmp_path / "flower.log").read_text()
                time.sleep(0.1)
            app = run.app()
            result = app.hog.delay(600)
            wait_state(result, ("STARTED",), timeout=30)
            started = time.monotonic()
            info = None
            while time.monotonic() - started < 10:
                info = _task_info(port, result.id)
                if info and info.get("state") == "FAILURE":
                    break
                time.sleep(0.02)
            assert info is not None and info["state"] == "FAILURE", (info, (tmp_path / "flower.log").read_text())
            took = time.monotonic() - started
            assert "OOMKilled" in (info.get("exception") or ""), info
            assert took < 1.0 * TIME_SCALE, f"{took:.3f} s from STARTED until Flower said FAILURE"
        finally:
            flower.terminate()
            flower.wait(timeout=30)
