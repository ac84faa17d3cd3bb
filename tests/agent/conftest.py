"""An agent wrapping a real worker of tests/agent/user_app.py, on Redis db 12 with an app name and a
queue of its own per test (so tests in parallel never see each other's keys or messages)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

REDIS = os.environ.get("OOMLAB_TEST_AGENT_REDIS", "redis://127.0.0.1:6379/12")
AMQP = os.environ.get("OOMLAB_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
HERE = Path(__file__).parent


def agent_lines(text: str) -> list[str]:
    """The agent's own lines in a log it shares with the worker."""
    return [line for line in text.splitlines() if line.startswith("oomlab agent:")]


def worker_command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "user_app", "worker", "-c", "1", "-l", "info", *extra]


class AgentRun:
    def __init__(self, tmp_path: Path, broker: str = REDIS, backend: str = REDIS):
        self.name = f"agenttest{uuid.uuid4().hex[:8]}"
        self.queue = f"{self.name}.q"
        self.node = f"{self.name}@localhost"  # a pidbox queue of its own: a broadcast revoke reaches this worker
        self.broker = broker
        self.env = dict(
            os.environ,
            AGENT_TEST_APP=self.name,
            AGENT_TEST_BROKER=broker,
            AGENT_TEST_BACKEND=backend,
            AGENT_TEST_QUEUE=self.queue,
            # the VM lane has oomlab on its PYTHONPATH, not installed: kept after the app's folder
            PYTHONPATH=os.pathsep.join(filter(None, (str(HERE), os.environ.get("PYTHONPATH")))),
        )
        self.log = tmp_path / "agent.log"
        self.process: subprocess.Popen | None = None

    def start(
        self, *agent_args: str, worker: list[str] | None = None, wrap: tuple[str, ...] | list[str] = ()
    ) -> subprocess.Popen:
        """The agent (behind `wrap`, a command that execs its arguments) wrapping the worker."""
        argv = [*wrap, sys.executable, "-m", "oomlab", "agent", *agent_args, "--", *(worker or worker_command())]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(argv, env=self.env, cwd=HERE, stdout=log, stderr=subprocess.STDOUT)
        return self.process

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.text():
                return
            assert self.process is not None and self.process.poll() is None, self.text()
            time.sleep(0.1)
        raise AssertionError(f"the worker did not become ready:\n{self.text()}")

    def app(self):
        """The client's side: the same app module, imported here with this test's settings."""
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("AGENT_TEST_")})
        sys.path.insert(0, str(HERE))
        import importlib

        import user_app

        return importlib.reload(user_app)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def cleanup(self) -> None:
        import redis

        client = redis.Redis.from_url(REDIS)
        for key in client.scan_iter(f"*{self.name}*"):
            client.delete(key)
        if self.broker.startswith("amqp"):
            self.delete_amqp_entities()

    def delete_amqp_entities(self) -> None:
        """This test's queue, its exchange (Celery names the default exchange after the default queue)
        and the worker's pidbox queue; the shared exchanges (celery.pidbox, celeryev) stay."""
        from kombu import Connection

        with Connection(self.broker) as connection:
            channel = connection.default_channel
            for queue in (self.queue, f"{self.node}.celery.pidbox"):
                channel.queue_delete(queue)
            channel.exchange_delete(self.queue)

    def amqp_leftovers(self) -> list[str]:
        """The queue and exchange this test made, still on the broker."""
        from kombu import Connection

        left = []
        for kind, name in (("queue", self.queue), ("exchange", self.queue), ("queue", f"{self.node}.celery.pidbox")):
            with Connection(self.broker) as connection:  # a passive declare of a missing entity closes the channel
                try:
                    if kind == "queue":
                        connection.default_channel.queue_declare(name, passive=True)
                    else:
                        connection.default_channel.exchange_declare(name, "direct", passive=True)
                    left.append(f"{kind} {name}")
                except connection.channel_errors:
                    pass
        return left


@pytest.fixture
def agent_run(tmp_path):
    runs: list[AgentRun] = []

    @contextmanager
    def make(**kwargs):
        run = AgentRun(tmp_path, **kwargs)
        runs.append(run)
        try:
            yield run
        finally:
            run.stop()

    yield make
    for run in runs:
        run.stop()
        run.cleanup()


def locked_bytes(pid: int) -> int:
    """A process's locked memory (VmLck)."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmLck:"))


def wait_state(result, states=("FAILURE", "SUCCESS"), timeout: float = 30) -> float:
    """Seconds until the result reached one of `states`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if result.state in states:
            return time.monotonic() - start
        time.sleep(0.005)
    raise AssertionError(f"{result.id} stayed {result.state}")


def dead_letters_key(run: AgentRun) -> str:
    """The Redis hash where the agent keeps its app's dead letters, by task id."""
    return f"oomlab:agent:{run.name}:dead"


def wait_dead_letter(run: AgentRun, task_id: str, timeout: float = 60) -> dict:
    """The agent's dead letter for `task_id` (its Redis hash `oomlab:agent:<app>:dead`), once written."""
    import json

    import redis

    client = redis.Redis.from_url(REDIS)
    key = dead_letters_key(run)
    deadline = time.monotonic() + timeout
    while not client.hexists(key, task_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    entry = client.hget(key, task_id)
    assert entry is not None, f"no dead letter for {task_id} in {timeout} s:\n{run.text()}"
    return json.loads(entry)


def wait_oomkilled(result, timeout: float = 30):
    """(seconds until the task read FAILURE with the agent's OOMKilled, the result read afresh). Read
    afresh each time: Celery's own WorkerLostError may land before the agent's first repair (which
    imports Celery), and an AsyncResult keeps the first ready state it read."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        fresh = result.app.AsyncResult(result.id)
        if fresh.state == "FAILURE" and type(fresh.result).__name__ == "OOMKilled":
            return time.monotonic() - start, fresh
        time.sleep(0.005)
    raise AssertionError(f"{result.id} never read OOMKilled: {result.app.AsyncResult(result.id).result!r}")
