"""How a kill reads (no worker: the fast lane), and what the agent's own process imports."""

from __future__ import annotations

import json
import subprocess
import sys

from oomlab.agent.kills import Kill

MiB = 2**20


def test_a_kill_at_the_group_limit_names_the_group_and_the_task_peak():
    kill = Kill(pid=7, role="pool child", cause="oom", seen_mono=0.0, task_id="i", task_name="t")
    kill.peak_bytes, kill.limit_bytes, kill.group_bytes = int(127.7 * MiB), 256 * MiB, 256 * MiB
    assert kill.describe() == (
        "task t (i) in pool child pid 7 was killed by the kernel's OOM killer with its memory group at its "
        "limit (group peak 256.0 MiB, limit 256.0 MiB); the task's own peak 127.7 MiB"
    )


def test_a_descendant_names_its_program_and_its_task():
    kill = Kill(pid=9, role="descendant", cause="oom", seen_mono=0.0, task_id="i", task_name="t", program="python3")
    kill.parent_pid, kill.peak_bytes, kill.limit_bytes, kill.group_bytes = 7, 200 * MiB, 256 * MiB, 100 * MiB
    assert kill.describe() == (
        "program python3 (pid 9), started by task t (i) in pool child pid 7, was killed by the kernel's OOM "
        "killer with its memory group below its limit (group peak 100.0 MiB, limit 256.0 MiB); "
        "the program's RSS at the kill 200.0 MiB"
    )


def test_the_agent_imports_no_celery_kombu_or_redis_until_a_repair():
    code = (
        "import sys, oomlab.cli.main, oomlab.agent.command, oomlab.agent.metrics, oomlab.agent.alerts;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'celery', 'kombu', 'redis', 'billiard'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


_PROBE = r"""
import json, os, socket
ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
os.environ["OOMLAB_PROBE_FD"] = str(theirs.fileno())
from celery import Celery, signals
import oomlab.probe.loader
app = Celery("probe-test", set_as_current=False)
@app.task
def t():
    pass
if os.fork() == 0:
    signals.worker_process_init.send(sender=None)
    for mib in (64, 0):
        signals.task_prerun.send(sender=t, task_id=f"id{mib}", task=t, args=(), kwargs={})
        block = bytearray(mib * 2**20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        del block
        signals.task_postrun.send(sender=t, task_id=f"id{mib}", task=t, args=(), kwargs={}, retval=None, state="SUCCESS")
    os._exit(0)
os.wait()
lines = []
while True:
    try:
        lines.append(json.loads(ours.recv(1 << 20, socket.MSG_DONTWAIT)))
    except BlockingIOError:
        break
print(json.dumps(lines))
"""


def test_the_agents_probe_gives_each_task_its_own_exact_peak():
    """The agent's probe (what CELERY_LOADER loads) in a forked process: VmHWM reset at each task's
    start, so a 64 MiB task's peak is its own and the next task's is not it."""
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    lines = json.loads(done.stdout)
    assert [line["ev"] for line in lines] == ["child_init", "prerun", "postrun", "prerun", "postrun"]
    big, small = lines[2], lines[4]
    assert big["task_id"] == "id64" and big["state"] == "SUCCESS" and big["tree_peak"] is None
    assert big["peak_rss"] - small["peak_rss"] >= 60 * MiB, (big, small)
    assert set(big) <= {
        "ev",
        "pid",
        "t",
        "wall",
        "task_id",
        "name",
        "state",
        "peak_rss",
        "tree_peak",
        "tree_peak_exact",
        "leaf_kills",
    }
