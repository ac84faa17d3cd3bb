"""The agent passes the signals it gets on to its worker. Once it has reaped the worker, its teardown
(alerts flushed, events sent) takes seconds, and the worker's pid is free for any process to take:
a signal then must reach nobody, not whoever took the pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import psutil
import pytest

from tests.agent.conftest import AgentRun

pytestmark = [pytest.mark.integration, pytest.mark.services]


def _process_with_pid(pid: int, until: float) -> subprocess.Popen | None:
    """A `sleep` given `pid` (root sets the next pid through ns_last_pid; another fork may take it
    first, so it is tried again until `until`)."""
    while time.monotonic() < until:
        with open("/proc/sys/kernel/ns_last_pid", "w") as last:
            last.write(str(pid - 1))
        process = subprocess.Popen(["sleep", "60"])
        if process.pid == pid:
            return process
        process.kill()
        process.wait()
    return None


def _session_members(sid: int) -> list[int]:
    """Processes (zombies too) in the session `sid` leads: its pid is not free until they are gone."""
    members = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if name.isdigit() and int(fields[4]) == sid:
            members.append(int(name))
    return members


def test_a_signal_after_the_worker_is_reaped_reaches_no_process_that_took_its_pid(tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens: the agent's teardown retries its alert for 3 s
    run = AgentRun(tmp_path)
    taker = None
    pool: list[psutil.Process] = []
    try:
        run.start("--alert-webhook", f"http://127.0.0.1:{port}/hook")
        run.wait_ready()
        worker = psutil.Process(run.process.pid).children()[0]
        pool = worker.children()
        worker.kill()  # the worker's main process SIGKILLed: an alert to send in the teardown
        for child in pool:
            child.kill()
        deadline = time.monotonic() + 2.8  # the teardown's alert retries last 3 s
        while _session_members(worker.pid) and time.monotonic() < deadline:
            time.sleep(0.001)  # the pid is free once no process has it as its session (the pool's too)
        assert not _session_members(worker.pid), "the worker or its pool is still there"
        taker = _process_with_pid(worker.pid, deadline)
        assert taker is not None, f"no process could be given pid {worker.pid}"
        assert run.process.poll() is None, "the agent's teardown ended before the test could signal it"
        run.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert taker.poll() is None, f"the agent's SIGTERM reached pid {worker.pid}'s new owner"
        assert run.process.wait(timeout=10) == 128 + signal.SIGKILL
    finally:
        if taker is not None:
            taker.kill()
            taker.wait()
        run.stop()
        run.cleanup()
