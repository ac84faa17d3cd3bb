"""The delivery cap with a real worker: a poison task under acks_late + reject_on_worker_lost is
redelivered after each OOM kill until its N-th, then revoked, dead-lettered and marked FAILURE;
`oomlab replay` sends the dead letter again."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest
import redis

from tests.agent.conftest import REDIS, dead_letters_key, wait_dead_letter, wait_state, worker_command

pytestmark = [pytest.mark.integration, pytest.mark.services]


REPLAY = (sys.executable, "-m", "oomlab", "replay")


def test_a_poison_task_stops_after_n_kills_and_is_dead_lettered_then_replayed(agent_run):
    with agent_run() as run:
        run.start("--memory", "256MiB", "--max-oom-redeliveries", "2")
        run.wait_ready()
        mod = run.app()
        result = mod.poison.delay(600)
        client = redis.Redis.from_url(REDIS)
        dead_key = dead_letters_key(run)
        entry = wait_dead_letter(run, result.id)
        assert entry["message"]["name"] == "user_app.poison" and entry["message"]["args"] == [600]
        assert len(entry["kills"]) == 2 and all(k["cause"] == "oom" for k in entry["kills"])
        deadline = time.monotonic() + 5  # the agent's line follows the dead letter, once the task is marked
        while run.text().count("in pool child pid") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert run.text().count("in pool child pid") == 2, run.text()  # redelivered once, killed twice, no third run

        # the revoked message is dropped where it lands (Celery stores REVOKED): the agent's error is the last word
        deadline = time.monotonic() + 30
        while "revoked" not in run.text().lower() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        final = mod.app.AsyncResult(result.id)
        assert final.state == "FAILURE" and "dead-lettered after 2 OOM kills" in str(final.result), final.result

        listed = subprocess.run(
            [*REPLAY, "--redis", REDIS, "--app", run.name],
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.id in listed.stdout and "user_app.poison" in listed.stdout
        sent = subprocess.run(
            [*REPLAY, "--redis", REDIS, "--broker", run.broker, "--app", run.name, result.id],
            capture_output=True,
            text=True,
            check=True,
        )
        new_id = sent.stdout.split()[-1]
        assert not client.hexists(dead_key, result.id)
        wait_state(mod.app.AsyncResult(new_id), ("STARTED",), timeout=30)  # a worker took the replayed message


def test_the_first_poison_task_of_a_session_keeps_its_message_with_two_pool_children(agent_run):
    """The pool's first children fork before the worker is ready: a poison task dead-lettered on its
    first deliveries of the session (every kill in a child forked at start) still keeps its message."""
    with agent_run() as run:
        run.start("--memory", "256MiB", worker=worker_command("-c", "2"))
        run.wait_ready()
        mod = run.app()
        result = mod.poison.delay(500)
        entry = wait_dead_letter(run, result.id, timeout=90)
        message = entry["message"]
        assert message is not None, entry
        assert message["name"] == "user_app.poison" and message["args"] == [500] and message["kwargs"] == {}
        assert message["queue"] == run.queue, message
        assert len(entry["kills"]) == 3 and all(k["queue"] == run.queue for k in entry["kills"]), entry["kills"]

        listed = subprocess.run(
            [*REPLAY, "--redis", REDIS, "--app", run.name],
            capture_output=True,
            text=True,
            check=True,
        )
        assert f"{result.id}\tuser_app.poison\t3 kills" in listed.stdout, listed.stdout
        sent = subprocess.run(
            [*REPLAY, "--redis", REDIS, "--broker", run.broker, "--app", run.name, result.id],
            capture_output=True,
            text=True,
        )
        assert sent.returncode == 0, sent.stderr
        assert not redis.Redis.from_url(REDIS).hexists(dead_letters_key(run), result.id)
        wait_state(mod.app.AsyncResult(sent.stdout.split()[-1]), ("STARTED",), timeout=30)


def test_replay_says_why_a_dead_letter_cannot_be_sent():
    """Refused with the stored reason (exit 2), never "too large" for a message that was not kept at all."""
    from oomlab.agent.store import Store

    app = f"agenttest{uuid.uuid4().hex[:8]}"
    store = Store(REDIS, app)
    kills = [{"task": "user_app.poison", "queue": None}]
    try:
        store.dead_letter("lost", None, kills, "killed", "none of its killed deliveries sent the agent its message")
        store.dead_letter(
            "big", {"name": "user_app.poison", "args": None, "note": "its message took 300000 bytes"}, kills, "killed"
        )

        def replay(*ids: str) -> subprocess.CompletedProcess:
            argv = [*REPLAY, "--redis", REDIS, "--broker", REDIS, "--app", app, *ids]
            return subprocess.run(argv, capture_output=True, text=True, timeout=30)

        assert "lost\tuser_app.poison\t1 kills" in replay().stdout  # named from its kills
        lost = replay("lost")
        assert lost.returncode == 2 and "has no message to send: none of its killed deliveries" in lost.stderr
        assert "too large" not in lost.stderr
        big = replay("big")
        assert big.returncode == 2 and "its message took 300000 bytes" in big.stderr, big.stderr
        assert store.is_dead("lost") and store.is_dead("big")
    finally:
        redis.Redis.from_url(REDIS).delete(store.dead_key)
