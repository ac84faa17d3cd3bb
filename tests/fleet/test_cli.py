"""`oomlab run --fleet` and `oomlab agent --events` refusing what they cannot do: one sentence on stderr,
a documented exit code, no traceback, no password repeated. No worker is started here."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import redis

REDIS = os.environ.get("OOMLAB_TEST_AGENT_REDIS", "redis://127.0.0.1:6379/12")


def _oomlab(*args: str, env: dict | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "oomlab", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def _one_sentence(done: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("oomlab")]
    assert lines, done.stderr
    return lines[-1]


FLEET = ["run", "alloc", "--broker", f"{REDIS}"]


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--fleet", "redis://127.0.0.1:6379/x", "--replicas", "1"], 2, "the path must be /DB/STREAM"),
        (["--fleet", "redis://:s3cret@127.0.0.1:6379/0/s", "--replicas", "1"], 2, "give it by --fleet-from-env"),
        (["--fleet", "redis://127.0.0.1:6379/0/s"], 2, "--fleet needs --replicas N"),
        (["--fleet", "redis://127.0.0.1:6379/0/s", "--replicas", "0"], 2, "--fleet needs --replicas N"),
        (["--fleet", "redis://127.0.0.1:6379/0/s", "--replicas", "a,a"], 2, "once each"),
        (["--fleet", "redis://127.0.0.1:6379/0/s", "--replicas", "2", "--memory", "1GiB"], 2, "are the replicas'"),
        (["--fleet", "redis://127.0.0.1:6379/0/s", "--replicas", "2", "--rate", "5/s"], 2, "not built for fleets"),
        (["--fleet", "redis://127.0.0.1:1/0/s", "--replicas", "1"], 5, "cannot reach the events stream"),
    ],
)
def test_a_fleet_run_refuses_with_one_sentence(tmp_path, args, code, says):
    done = _oomlab(*FLEET, *args, "--results", str(tmp_path / "results"))
    assert done.returncode == code, done.stderr
    sentence = _one_sentence(done)
    assert says in sentence and "s3cret" not in done.stderr + done.stdout


def test_no_hello_within_the_timeout_is_exit_4_and_the_stream_is_deleted(tmp_path):
    stream = f"oomlab-fleet-cli-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS)
    client.xadd(stream, {"e": "{}"})  # an entry that is no agent's hello
    done = _oomlab(
        *FLEET, "--fleet-from-env", "URL", "--replicas", "2", "--hello-timeout", "0.5",
        "--results", str(tmp_path / "results"), env={"URL": f"redis://:s3cret@127.0.0.1:6379/12/{stream}"},
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert "no replica said hello" in _one_sentence(done) and "s3cret" not in done.stderr
    assert not client.exists(stream)


def test_the_agent_refuses_a_password_on_its_command_line():
    done = _oomlab("agent", "--events", "redis://:s3cret@127.0.0.1:6379/0/s", "--", "celery", "-A", "x", "worker")
    assert done.returncode == 2
    assert "give it by --events-from-env" in _one_sentence(done) and "s3cret" not in done.stderr
