"""--alert-webhook: one well-formed JSON per kill to a receiver on 127.0.0.1; a receiver that is
down delays neither the detection nor the repair."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from bench.agent_common import receiver
from tests.agent.conftest import wait_state
from tests.conftest import TIME_SCALE

pytestmark = [pytest.mark.integration, pytest.mark.services]


def test_one_json_per_kill(agent_run):
    server, received = receiver()
    try:
        with agent_run() as run:
            run.start("--memory", "256MiB", "--alert-webhook", f"http://127.0.0.1:{server.server_port}/hook")
            run.wait_ready()
            mod = run.app()
            sent = time.monotonic()
            result = mod.hog.delay(600)
            wait_state(result)
            for _ in range(100):
                if received:
                    break
                threading.Event().wait(0.05)
            assert len(received) == 1
            alert = received[0]
            assert alert["event"] == "oom_kill" and alert["task"] == "user_app.hog" and alert["id"] == result.id
            assert alert["limit_bytes"] == 256 * 2**20 and alert["peak_bytes"] > 0 and alert["pid"] > 0
            assert alert["repaired"] == ["marked_failure"]
            assert sent < alert["seen_monotonic"] < time.monotonic()  # this host's CLOCK_MONOTONIC
            assert alert["detection_s"] is not None and alert["detection_s"] < alert["seen_monotonic"] - sent
    finally:
        server.shutdown()


def test_a_receiver_that_is_down_delays_nothing(agent_run):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with agent_run() as run:
        run.start("--memory", "256MiB", "--alert-webhook", f"http://127.0.0.1:{port}/hook")
        run.wait_ready()
        mod = run.app()
        result = mod.hog.delay(600)
        wait_state(result, ("STARTED",))
        started = time.monotonic()
        while time.monotonic() - started < 5 * TIME_SCALE:  # afresh: Celery's WorkerLostError may land first
            if type(mod.app.AsyncResult(result.id).result).__name__ == "OOMKilled":
                break
            time.sleep(0.005)
        assert time.monotonic() - started < 1.0 * TIME_SCALE
        assert type(mod.app.AsyncResult(result.id).result).__name__ == "OOMKilled"


def test_a_webhook_with_a_password_gets_it_as_basic_auth_and_never_prints_it():
    """user:password in the URL: urllib refuses it (InvalidURL), which once killed the alerts thread and
    printed the password; now it goes as an Authorization header and appears in no output."""
    import base64

    from oomlab.agent.alerts import Alerts
    from oomlab.agent.kills import Kill

    server, received = receiver()
    said: list[str] = []
    try:
        alerts = Alerts.start(f"http://alice:S3cr%40t@127.0.0.1:{server.server_port}/hook", said.append)
        alerts.post(Kill(pid=1, role="pool child", cause="oom", seen_mono=0.0))
        alerts.flush(timeout=5)
        broken = Alerts.start("http://alice:S3cret@127.0.0.1:notaport/hook", said.append)
        for _ in range(2):
            broken.post(Kill(pid=2, role="pool child", cause="oom", seen_mono=0.0))
        broken.flush(timeout=30)
    finally:
        server.shutdown()
    assert [alert["host_authorization"] for alert in received] == [
        "Basic " + base64.b64encode(b"alice:S3cr@t").decode()
    ]
    assert alerts.sent == 1 and broken.failed == 2 and len(said) == 2  # the thread lived on past the first
    assert not any("S3cr" in sentence for sentence in said), said
