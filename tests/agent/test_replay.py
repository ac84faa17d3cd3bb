"""`oomlab replay` sends a dead letter where the app's workers listen: the dead letters live in the
result backend, which is not the broker (here broker db 13, backend db 14, on the real Redis)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import redis
from oomlab.agent.store import Store

BROKER = "redis://127.0.0.1:6379/13"
BACKEND = "redis://127.0.0.1:6379/14"


@pytest.fixture
def project(tmp_path):
    """A user's app module (its own main name and default queue) and one dead letter of it."""
    name = f"replaytest{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "from celery import Celery\n"
        f"app = Celery({name!r}, broker={BROKER!r}, backend={BACKEND!r})\n"
        f"app.conf.task_default_queue = {name + '.q'!r}\n"
        f"@app.task(name={name + '.hog'!r})\n"
        "def hog(mib):\n"
        "    return mib\n"
    )
    store = Store(BACKEND, name)
    task_id = str(uuid.uuid4())
    store.dead_letter(task_id, {"name": f"{name}.hog", "args": [1], "kwargs": {}, "queue": None}, [], "OOMKilled")
    yield tmp_path, name, task_id
    store.forget(task_id)
    for url in (BROKER, BACKEND):
        redis.Redis.from_url(url).delete(f"{name}.q", "celery")


def _replay(cwd, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "oomlab", "replay", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def test_with_app_the_dead_letter_goes_to_the_apps_own_broker_and_queue(project):
    cwd, name, task_id = project
    done = _replay(cwd, "--redis", BACKEND, "--app", name, task_id)
    assert done.returncode == 0 and "sent again as" in done.stdout, done.stderr
    assert redis.Redis.from_url(BROKER).llen(f"{name}.q") == 1  # where the app's workers listen
    assert redis.Redis.from_url(BACKEND).llen("celery") == 0 and redis.Redis.from_url(BACKEND).llen(f"{name}.q") == 0


def test_without_a_broker_to_send_to_nothing_is_guessed(project):
    cwd, name, task_id = project
    for argv in (["--redis", BACKEND, task_id], ["--redis", BACKEND, "--app", "nosuchmodule", task_id]):
        done = _replay(cwd, *argv)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and "give --broker" in done.stderr
    assert redis.Redis.from_url(BACKEND).llen("celery") == 0
    assert Store(BACKEND, name).is_dead(task_id)  # still there to send


def test_an_empty_listing_says_where_it_looked(project):
    cwd, name, _ = project
    # a password goes by the environment (refused on a command line every user can read)
    done = _replay(cwd, "--redis-from-env", "DEAD", "--app", name, env={"DEAD": "redis://:s3cret@127.0.0.1:6379/15"})
    assert done.returncode == 0 and done.stdout == ""
    assert done.stderr == f"oomlab: no dead letters for app {name} in redis://:***@127.0.0.1:6379/15\n"


def test_a_dead_letter_another_hand_wrote_is_not_sent(project):
    """Anyone who can write to the result backend's Redis can write a dead letter: one naming a task
    the app does not register, or shaped unlike the agent's, is refused and nothing is sent."""
    cwd, name, _ = project
    store = Store(BACKEND, name)
    forged = {
        str(uuid.uuid4()): ({"name": "os.system", "args": ["id"], "kwargs": {}, "queue": None}, "does not register"),
        str(uuid.uuid4()): ({"name": f"{name}.hog", "args": "x", "kwargs": {}, "queue": ["q"]}, "args, queue is not"),
    }
    try:
        for task_id, (message, _) in forged.items():
            store.dead_letter(task_id, message, [], "OOMKilled")
        for task_id, (_, why) in forged.items():
            done = _replay(cwd, "--redis", BACKEND, "--app", name, task_id)
            assert done.returncode == 2 and done.stderr.count("\n") == 1 and why in done.stderr, done.stderr
            assert "nothing was sent" in done.stderr or "cannot be sent" in done.stderr
        assert redis.Redis.from_url(BROKER).llen(f"{name}.q") == 0 and redis.Redis.from_url(BROKER).llen("celery") == 0
    finally:
        for task_id in forged:
            store.forget(task_id)
