"""`oomlab run --fleet` and `oomlab agent --events` refusing what they cannot do: one sentence on stderr,
a documented exit code, no traceback, no password repeated. No worker is started here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import redis
from oomlab.record.fleet import load_fleet

from tests.fleet.hello import hello

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
        (["--fleet", "redis://127.0.0.1:6379/0/s", "--replicas", "-1"], 2, "--fleet needs --replicas N"),
        (["--fleet", "redis://127.0.0.1:6379/0/s", "--replicas", "a1 a2"], 2, "'a1 a2' is not a replica name"),
        (["--fleet", "redis://127.0.0.1:6379/0/s", "--replicas", "a1,,a2"], 2, "'' is not a replica name"),
        (["--fleet", "redis://127.0.0.1:6379/0/s", "--replicas", "r1", "--beside", ""], 2, "--beside"),
        (["--fleet", "redis://127.0.0.1:6379/0/s", "--replicas", "2", "--memory", "1GiB"], 2, "are the replicas'"),
        (["--fleet", "redis://127.0.0.1:6379/0/s", "--replicas", "2", "--rate", "5/s"], 2, "--rate needs --duration"),
        (
            ["--fleet", "redis://127.0.0.1:6379/0/s", "--replicas", "2", "--in-flight", "2", "--duration", "1s"],
            2,
            "not built for fleets",
        ),
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
    assert list((tmp_path / "results").iterdir()) == []  # no empty run directory left


def test_the_agent_refuses_a_password_on_its_command_line():
    done = _oomlab("agent", "--events", "redis://:s3cret@127.0.0.1:6379/0/s", "--", "celery", "-A", "x", "worker")
    assert done.returncode == 2
    assert "give it by --events-from-env" in _one_sentence(done) and "s3cret" not in done.stderr


def test_a_fleet_run_stopped_by_sigterm_deletes_its_stream_and_keeps_its_record(tmp_path):
    stream = f"oomlab-fleet-cli-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS)
    argv = [sys.executable, "-m", "oomlab", *FLEET, "--fleet", f"{REDIS}/{stream}", "--replicas", "1"]
    process = subprocess.Popen(
        [*argv, "--results", str(tmp_path / "results")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while not client.exists(stream) and time.monotonic() < deadline:  # waiting for hellos now
        time.sleep(0.05)
    assert client.exists(stream)
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 143 and "Traceback" not in err, err
    assert not client.exists(stream)
    [run_dir] = list((tmp_path / "results").iterdir())
    record = load_fleet(str(run_dir))
    assert record.status == "interrupted" and record.figures.sent == 0
    assert f"interrupted: the fleet run's partial record is {run_dir / 'fleet.json'}" in err, err
    # `oomlab report` on it says, in one sentence, that fleets have no page yet and where the record is
    report = subprocess.run([sys.executable, "-m", "oomlab", "report", str(run_dir)], capture_output=True, text=True)
    assert report.returncode == 2 and "fleet records have no HTML report yet" in report.stderr, report.stderr
    assert str(run_dir / "fleet.json") in report.stderr and "neither run.json" not in report.stderr


def test_a_kill_seen_within_a_millisecond_is_not_printed_as_0_ms():
    from oomlab.cli.fleet import _detection

    assert (_detection(0.0), _detection(0.0004), _detection(0.0025)) == ("< 1 ms", "< 1 ms", "2.5 ms")


@pytest.mark.parametrize("which", ["--broker", "--result-backend"])
def test_a_broker_or_backend_that_is_down_is_said_at_once_and_leaves_no_run_directory(tmp_path, which):
    """Before the replicas are waited for (not after their hellos and a client library's minute of
    retries, in a message of several lines), and no empty run directory is left."""
    down = "redis://:s3cret@127.0.0.1:1/0"
    argv = ["run", "alloc", "--broker", down if which == "--broker" else REDIS]
    if which == "--result-backend":
        argv += ["--result-backend", down]
    started = time.monotonic()
    done = _oomlab(*argv, "--fleet", f"{REDIS}/s-{uuid.uuid4().hex[:8]}", "--replicas", "1", "--results", str(tmp_path))
    assert done.returncode == 5, done.stderr
    what = "broker" if which == "--broker" else "result backend"
    assert f"cannot reach the {what}" in _one_sentence(done) and "s3cret" not in done.stderr
    assert time.monotonic() - started < 20 and os.listdir(tmp_path) == []


def test_replicas_beyond_those_expected_are_said_not_counted_silently(tmp_path):
    """Two agents say hello where --replicas named one: the other takes tasks too, so it is said (then
    the run is refused here: neither consumes the run's queue, so nothing is sent)."""
    from oomlab.record import fleet

    stream = f"oomlab-fleet-cli-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS)
    for pid, name in enumerate(("r1", "r2"), start=100):
        said = hello(name, wall=time.time(), pid=pid, agent_pid=pid, limit_bytes=256 << 20, queues=["elsewhere"])
        client.xadd(stream, {fleet.EVENT_FIELD: fleet.encode_event(said)})
    try:
        done = _oomlab(*FLEET, "--fleet", f"{REDIS}/{stream}", "--replicas", "r1", "--results", str(tmp_path))
    finally:
        client.delete(stream)
    assert done.returncode == 2, done.stderr
    assert "1 replica(s) not named by --replicas said hello and take tasks too: r2" in done.stderr
    assert "no replica consumes the queue" in _one_sentence(done)
