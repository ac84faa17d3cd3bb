"""The agent's and `oomlab replay`'s URLs that carry a secret (a webhook's token, a store's or a
broker's password) never sit on a command line, which every local user reads in /proc/PID/cmdline:
given there, they are refused (exit 2, one line naming the safe flag); given by environment or file,
they are used, and no process oomlab starts holds them in its command line (nor the worker in its
environment), and nothing it writes holds them."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import psutil
import pytest
from oomlab.agent.store import Store
from oomlab.worker import proc

from bench.agent_common import receiver
from tests.agent.conftest import AgentRun, wait_state, worker_command
from tests.conftest import TIME_SCALE
from tests.security.conftest import own_redis

TOKEN = secrets.token_hex(16)


def _oomlab(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "oomlab", *args], capture_output=True, text=True, timeout=60, env=env or dict(os.environ)
    )


@pytest.mark.parametrize(
    "args, safe",
    [
        (
            ["agent", "--alert-webhook", f"https://hooks.example/x?token={TOKEN}", "--", *worker_command()],
            "--alert-webhook-from-env",
        ),
        (
            ["agent", "--alert-webhook", f"https://u:{TOKEN}@hooks.example/x", "--", *worker_command()],
            "--alert-webhook-file",
        ),
        (["replay", "--redis", f"redis://:{TOKEN}@127.0.0.1:1/6"], "--redis-from-env"),
        # a token as a bare user, and query names that are not cut at _ - . (camelCase, Azure's code, jwt)
        (["agent", "--alert-webhook", f"https://{TOKEN}@hooks.example/x", "--", *worker_command()], "-from-env"),
        (["agent", "--alert-webhook", f"https://h.example/x?accessToken={TOKEN}", "--", *worker_command()], "-file"),
        (["agent", "--alert-webhook", f"https://h.example/api/x?code={TOKEN}", "--", *worker_command()], "-file"),
        (["agent", "--alert-webhook", f"https://h.example/x?jwt={TOKEN}", "--", *worker_command()], "-file"),
        (
            ["replay", "--redis", "redis://127.0.0.1:1/6", "--broker", f"amqp://app:{TOKEN}@127.0.0.1:1//"],
            "--broker-file",
        ),
    ],
)
def test_a_secret_on_the_command_line_is_refused(args, safe):
    result = _oomlab(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and safe in result.stderr and "can read a command line" in result.stderr
    assert TOKEN not in result.stderr + result.stdout


def _command_lines_and_environments(pid: int) -> list[tuple[str, str]]:
    """(command line, environment) of the agent and every process below it still there."""
    root = psutil.Process(pid)
    seen = []
    for process in [root, *root.children(recursive=True)]:
        try:
            seen.append((" ".join(process.cmdline()), "" if process is root else json.dumps(process.environ())))
        except psutil.NoSuchProcess:
            pass  # a pool child being replaced
    return seen


def _files_under(path) -> str:
    text = ""
    for folder, _, names in os.walk(path):
        for name in names:
            with open(os.path.join(folder, name), "rb") as handle:
                text += handle.read().decode(errors="replace")
    return text


@pytest.mark.integration
@pytest.mark.services
def test_a_webhook_token_given_by_environment_reaches_the_receiver_only(tmp_path):
    server, received = receiver()
    run = AgentRun(tmp_path)
    try:
        run.env["OOMLAB_TEST_HOOK"] = f"http://127.0.0.1:{server.server_port}/hook?token={TOKEN}"
        run.start("--memory", "256MiB", "--alert-webhook-from-env", "OOMLAB_TEST_HOOK")
        run.wait_ready()
        result = run.app().hog.delay(600)
        wait_state(result)
        assert proc.wait_until(lambda: received, 10 * TIME_SCALE), run.text()
        assert [alert["host_path"] for alert in received] == [f"/hook?token={TOKEN}"]  # the URL was used, token and all
        assert proc.wait_until(lambda: len(_command_lines_and_environments(run.process.pid)) >= 3, 20 * TIME_SCALE)
        seen = _command_lines_and_environments(run.process.pid)  # the agent, the worker, its new pool child
        for command_line, environment in seen:  # the worker's: the variable was removed before it started
            assert TOKEN not in command_line and TOKEN not in environment, command_line
        assert run.stop() == 0
        assert TOKEN not in run.text()
        assert TOKEN not in _files_under(tmp_path)
    finally:
        run.stop()
        run.cleanup()
        server.shutdown()


@pytest.fixture
def redis_with_password(tmp_path):
    """A redis-server of the test's own on a unix socket, requiring TOKEN: its URL."""
    socket_path = str(tmp_path / "redis.sock")
    with own_redis(socket_path, "--requirepass", TOKEN):
        yield f"unix://:{TOKEN}@{socket_path}?db=0"


def test_replay_takes_its_redis_password_by_environment_or_file(redis_with_password, tmp_path):
    store = Store(redis_with_password, "secretapp")
    store.dead_letter("dead-1", {"name": "user_app.poison", "args": [1]}, [], "OOMKilled")
    url_file = tmp_path / "redis.url"
    url_file.write_text(redis_with_password + "\n")
    os.chmod(url_file, 0o600)
    by_env = _oomlab(
        "replay",
        "--redis-from-env",
        "OOMLAB_TEST_REDIS",
        "--app",
        "secretapp",
        env={**os.environ, "OOMLAB_TEST_REDIS": redis_with_password},
    )
    by_file = _oomlab("replay", "--redis-file", str(url_file), "--app", "secretapp")
    for result in (by_env, by_file):
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("dead-1\tuser_app.poison\t"), result.stdout
        assert TOKEN not in result.stdout + result.stderr
    assert sorted(os.listdir(tmp_path)) == ["redis.sock", "redis.url"]  # nothing written beside


@pytest.mark.parametrize("form", [["-b", "URL"], ["--broker=URL"], ["--result-backend", "URL"]])
def test_a_password_in_the_workers_own_command_line_is_warned_of_and_never_shown(form, capsys):
    """The worker's command is the user's, run unchanged: a password there is said (ps shows it to
    everyone), once per URL, without the secret."""
    from oomlab.agent.command import warn_command_secrets

    url = f"redis://:{TOKEN}@127.0.0.1:6379/7"
    warn_command_secrets(["celery", *[part.replace("URL", url) for part in form], "-A", "app", "worker"])
    said = capsys.readouterr().err
    assert said.count("\n") == 1 and "holds a URL with a password (redis://127.0.0.1:6379/7)" in said, said
    assert TOKEN not in said
    warn_command_secrets(["celery", "-b", "redis://127.0.0.1:6379/7", "-A", "app", "worker"])
    assert capsys.readouterr().err == ""
