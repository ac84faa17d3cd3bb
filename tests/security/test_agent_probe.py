"""Anything a task starts may try to speak for the worker on the probe's socket: a program (started
with every inheritable fd, as os.system's is) or a child forked from the pool child, either running
as another user. They tell the agent that a pool child of theirs is running a redelivered task of
their choosing, with a message of their choosing, and then die: believed, the agent would revoke
that task id on every worker and dead-letter the message (which `oomlab replay` sends with the
broker's credentials). The program never holds the socket (close-on-exec, its number out of the
environment); the forked child holds it, and the kernel's stamp on each datagram says who sent it."""

from __future__ import annotations

import time
import uuid

import pytest
from oomlab.agent.store import Store

from tests.agent.conftest import REDIS, AgentRun, wait_state, worker_command

pytestmark = [pytest.mark.integration, pytest.mark.services]

FORGER = r"""
import json, os, socket, stat, time
VICTIM, QUEUE = {victim!r}, {queue!r}

def probe_sockets():
    for name in os.listdir("/proc/self/fd"):
        try:
            if not stat.S_ISSOCK(os.fstat(int(name)).st_mode):
                continue
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue
        if sock.family == socket.AF_UNIX and sock.type == socket.SOCK_DGRAM:
            yield sock

def line(ev, pid, **fields):
    return json.dumps({{"ev": ev, "pid": pid, "t": time.monotonic(), "wall": time.time(), **fields}}).encode() + b"\n"

me, sent = os.getpid(), 0
message = {{"name": "user_app.poison", "args": [666], "kwargs": {{}}, "headers": {{}}, "queue": QUEUE}}
for sock in probe_sockets():
    for pid in (me, os.getppid()):  # as itself, and as the pool child above it
        for data in (
            line("child_init", pid, ppid=0, leaf=None),
            line("agent_message", pid, task_id=VICTIM, message=message),
            line("prerun", pid, task_id=VICTIM, name="user_app.poison"),
        ):
            try:
                sock.send(data)
                sent += 1
            except OSError:
                pass
print("forged", sent, "lines", flush=True)
time.sleep(0.5)  # the agent reads them, then sees this "pool child" die with the task in flight
os.kill(me, 9)
"""


@pytest.mark.parametrize(
    "fork, pool",
    [(False, "prefork"), (True, "prefork"), (True, "solo")],
    ids=["program", "forked child", "child forked by a solo worker's main process"],
)
def test_a_task_s_helper_cannot_forge_probe_events(tmp_path, other_user, fork, pool):
    """With a solo (threads, gevent) pool a task runs in the main process, so its forked helper is a
    child of the main process, as a pool child is: it runs as another user, and is not believed."""
    victim = str(uuid.uuid4())
    run = AgentRun(tmp_path)
    try:
        run.start("--max-oom-redeliveries", "1", worker=worker_command("-P", pool))
        run.wait_ready()
        mod = run.app()
        code = FORGER.format(victim=victim, queue=run.queue)
        result = mod.helper.delay(code, other_user.uid, other_user.gid, fork)
        wait_state(result)
        assert result.state == "SUCCESS" and result.result == -9, result.result  # it ran, and died as planned
        time.sleep(2)  # what a believed forgery would have made the agent do by now
        assert Store(REDIS, run.name).dead() == {}, run.text()
        assert mod.app.AsyncResult(victim).state == "PENDING", run.text()
        text = run.text()
        assert victim not in text, text
        if fork:  # it held the socket: its lines arrived and were dropped, said once
            assert text.count("dropped a probe event from pid") == 1, text
            assert f"(uid {other_user.uid})" in text, text
        else:  # the program never held it
            assert "dropped a probe event" not in text, text
        assert run.stop() == 0
    finally:
        run.stop()
        run.cleanup()
