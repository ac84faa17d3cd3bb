"""How a kill reads (no worker: the fast lane), and what the agent's own process imports."""

from __future__ import annotations

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
