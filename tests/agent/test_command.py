"""The agent's command line, checked before anything starts (no worker: the fast lane)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from oomlab.agent.command import check_command, worker_queue
from oomlab.agent.worker_process import probe_socket
from oomlab.cli.commands.agent import metrics_address
from oomlab.errors import BadInput
from oomlab.probe.events import decode


@pytest.mark.parametrize(
    "command",
    [
        ["celery", "-A", "app", "worker"],
        ["/usr/bin/celery", "-A", "app", "worker", "-Q", "q"],
        [sys.executable, "-m", "celery", "-A", "app", "worker"],
    ],
)
def test_celery_worker_commands_are_accepted(command):
    check_command(command)


@pytest.mark.parametrize("command", [[], ["sleep", "5"], ["celery", "-A", "app", "beat"], ["python", "x.py"]])
def test_other_commands_are_refused_in_one_sentence(command):
    with pytest.raises(BadInput):
        check_command(command)


def test_a_non_celery_command_exits_2_with_one_sentence_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    done = subprocess.run(
        [sys.executable, "-m", "oomlab", "agent", "--", "touch", str(marker)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "is not a Celery worker command" in done.stderr
    assert not marker.exists()


def test_the_queue_label_is_the_one_queue_named():
    assert worker_queue(["celery", "worker", "-Q", "a"]) == "a"
    assert worker_queue(["celery", "worker", "--queues=b"]) == "b"
    assert worker_queue(["celery", "worker", "-Qc"]) == "c"
    assert worker_queue(["celery", "worker", "-Q", "a,b"]) is None
    assert worker_queue(["celery", "worker"]) is None


def test_metrics_addresses():
    assert metrics_address("9100") == ("127.0.0.1", 9100)
    assert metrics_address("0.0.0.0:9100") == ("0.0.0.0", 9100)
    assert metrics_address("[::1]:9100") == ("::1", 9100)
    for bad in ("x", "host:0", "host:99999"):
        with pytest.raises(BadInput):
            metrics_address(bad)


def test_the_probe_socket_drops_when_full_and_never_blocks(monkeypatch):
    """The worker's end is non-blocking: a stuck agent costs the worker dropped events, not a hang."""
    from oomlab.probe import channel

    ours, theirs = probe_socket()
    monkeypatch.setenv(channel.FD_ENV, str(theirs.fileno()))
    monkeypatch.setattr(channel, "_fd", None)
    monkeypatch.setattr(channel, "_socket", False)
    monkeypatch.setattr(channel, "dropped", 0)
    assert channel.claim_socket() and channel.FD_ENV not in os.environ  # a task's program never learns it
    assert not os.get_inheritable(theirs.fileno())
    channel.emit("prerun", task_id="t1", name="n")
    line = decode(ours.recv(1 << 20, socket.MSG_DONTWAIT))
    assert line is not None and line["ev"] == "prerun" and line["task_id"] == "t1"
    for _ in range(100_000):  # far more than the socket holds
        channel.emit("prerun", task_id="t", name="n", padding="x" * 1000)
        if channel.dropped:
            break
    assert channel.dropped > 0
    ours.close()
    channel.emit("prerun", task_id="t2")  # the reader gone: still no exception
    theirs.close()


def _agent(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oomlab", "agent", *argv], capture_output=True, text=True)


@pytest.mark.parametrize(
    "memory,phrase",
    [
        ("--memory=", "--memory is empty; give a size such as 256MiB"),  # not "no limit"
        ("--memory=256", "--memory 256 has no unit: write 256MiB"),
        ("--memory=1KiB", "--memory 1KiB is below 32 MiB, the least the agent accepts"),
        ("--memory=31MiB", "--memory 31MiB is below 32 MiB"),
    ],
)
def test_a_memory_limit_no_worker_can_run_under_is_refused_before_anything_starts(tmp_path, memory, phrase):
    marker = tmp_path / "ran"
    done = _agent(memory, "--", "sh", "-c", f"touch {marker}", "celery", "worker")  # passes as a worker command
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and phrase in done.stderr, done.stderr
    assert not marker.exists()


def test_usage_errors_name_the_agents_own_options_and_help():
    done = _agent("--memory", "-5MiB", "--", "celery", "-A", "app", "worker")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "--memory=VALUE" in done.stderr and "--rate" not in done.stderr
    done = _agent("--bogus", "--", "celery", "-A", "app", "worker")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.endswith("(see oomlab agent --help)\n"), done.stderr


@pytest.mark.parametrize(
    "worker,phrase",
    [
        (["celery", "-A", "reports", "beat"], "celery -A reports beat` is not a Celery worker command"),
        (["celery", "-A", "reports", "worker", "--detach"], "cannot --detach (-D) under the agent"),
        (["celery", "-A", "reports", "worker", "-l", "info", "-D"], "cannot --detach (-D) under the agent"),
    ],
)
def test_a_command_the_agent_cannot_watch_is_refused_whole_and_runs_nothing(tmp_path, worker, phrase):
    marker = tmp_path / "ran"
    done = _agent("--", "sh", "-c", f"touch {marker}", *worker)  # sh runs it as `celery ...` if let through
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and phrase in done.stderr, done.stderr
    assert not marker.exists()


@pytest.mark.parametrize("url", ["notaurl", "ftp://x/y", "http://", "https://host:port/hook", "http://[::1/hook"])
def test_an_alert_webhook_that_is_not_an_http_url_is_refused_at_start(tmp_path, url):
    marker = tmp_path / "ran"
    done = _agent("--alert-webhook", url, "--", "sh", "-c", f"touch {marker}", "celery", "worker")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "is not an http:// or https:// URL with a host" in done.stderr
    assert not marker.exists()


def test_an_alert_webhooks_password_is_masked_in_the_refusal():
    done = _agent("--alert-webhook", "ftp://user:s3cret@host/hook", "--", "sh", "-c", "exit 0", "celery", "worker")
    assert done.returncode == 2 and "s3cret" not in done.stderr, done.stderr
