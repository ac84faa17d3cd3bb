"""The agent with RabbitMQ as the broker and Redis as the result backend (where the delivery cap
counts): the same repair and the same cap as on Redis, with a queue and a worker name of this test's
own, and its queues and exchange deleted at the end."""

from __future__ import annotations

import time

import pytest

from tests.agent.conftest import AMQP, wait_dead_letter, wait_oomkilled, wait_state, worker_command
from tests.conftest import TIME_SCALE

pytestmark = [pytest.mark.integration, pytest.mark.services]


def test_an_oom_killed_task_reads_failure_oomkilled_with_rabbitmq(agent_run):
    with agent_run(broker=AMQP) as run:
        run.start("--memory", "256MiB", worker=worker_command("-n", run.node))
        run.wait_ready()
        app = run.app()
        result = app.hog.delay(600)
        wait_state(result, ("STARTED",), timeout=30)
        took, result = wait_oomkilled(result)
        assert "killed by the kernel's OOM killer" in str(result.result) and "limit 256.0 MiB" in str(result.result)
        assert took < 1.0 * TIME_SCALE, f"{took:.3f} s from STARTED to FAILURE"
        assert app.small.delay().get(timeout=30) == "ok"  # the worker goes on
        assert run.stop() == 0
    run.cleanup()
    assert run.amqp_leftovers() == []


def test_the_delivery_cap_with_rabbitmq(agent_run):
    with agent_run(broker=AMQP) as run:
        run.start("--memory", "256MiB", "--max-oom-redeliveries", "2", worker=worker_command("-n", run.node))
        run.wait_ready()
        app = run.app()
        result = app.poison.delay(600)
        entry = wait_dead_letter(run, result.id)
        assert entry["message"]["queue"] == run.queue and len(entry["kills"]) == 2
        deadline = time.monotonic() + 30
        while "revoked" not in run.text().lower() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        final = app.app.AsyncResult(result.id)
        assert final.state == "FAILURE" and "dead-lettered after 2 OOM kills" in str(final.result), final.result
        assert run.text().count("in pool child pid") == 2, run.text()  # RabbitMQ's redelivery stopped at the cap
    run.cleanup()
    assert run.amqp_leftovers() == []
