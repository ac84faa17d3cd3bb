"""`oomlab agent` as the entrypoint of a cgroup v2 container, in the VM lane: the container Docker makes
by default on v2 (`cgroupns=private`), made here with the kernel's own pieces, since the VM has no
Docker: a memory group with `memory.max`, a cgroup namespace rooted at it, cgroup2 mounted read-only
at /sys/fs/cgroup, a non-root user with every capability dropped. The agent sees only its own group
(`0::/`), watches its `memory.events`, and repairs the task the kernel killed."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
import redis
from oomlab.worker import proc
from oomlab.worker.broker import redis_server_binary

from tests.agent.conftest import AgentRun, agent_lines, wait_oomkilled, wait_state
from tests.conftest import TIME_SCALE
from tests.faults.rabbitmq_node import free_port

pytestmark = pytest.mark.vm

CGROUP = "/sys/fs/cgroup"
LIMIT = 256 * 2**20
# in the group, then in its namespaces: the mount shows the namespace's root (the group) read-only
CONTAINER = """\
echo $$ > "$1/cgroup.procs" || exit 1
shift
exec unshare --cgroup --mount sh -c 'umount /sys/fs/cgroup && mount -t cgroup2 -o ro,nosuid,nodev,noexec cgroup2 /sys/fs/cgroup &&
  exec setpriv --reuid=tester --regid=tester --init-groups --inh-caps=-all --bounding-set=-all \
  env HOME=/home/tester "$@"' sh "$@"
"""


@pytest.fixture
def redis_url(tmp_path):
    port = free_port()
    argv = [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    assert proc.wait_until(answers, 10 * TIME_SCALE, 0.05), "redis-server did not start"
    yield url
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture
def container_group():
    group = os.path.join(CGROUP, f"oomlab-test-ctr-{uuid.uuid4().hex[:8]}")
    os.mkdir(group)
    with open(os.path.join(group, "memory.max"), "w") as limit:
        limit.write(str(LIMIT))
    with open(os.path.join(group, "memory.swap.max"), "w") as swap:
        swap.write("0")
    yield group
    proc.wait_until(lambda: not open(os.path.join(group, "cgroup.procs")).read().strip(), 30, 0.1)
    os.rmdir(group)


def test_the_agent_as_a_v2_containers_unprivileged_entrypoint_repairs_an_oom_killed_task(
    tmp_path, redis_url, container_group
):
    run = AgentRun(tmp_path, broker=redis_url, backend=redis_url)
    wrap = ("sh", "-c", CONTAINER, "container", container_group)
    run.start(wrap=wrap)
    try:
        run.wait_ready(timeout=120 * TIME_SCALE)
        said = "\n".join(agent_lines(run.text()))
        assert "runs unwatched by the cgroup" not in said, said  # the namespace's root group is readable
        app = run.app()
        result = app.hog.delay(600)
        wait_state(result, ("STARTED",), timeout=30 * TIME_SCALE)
        took, result = wait_oomkilled(result, timeout=30 * TIME_SCALE)
        message = str(result.result)
        assert "killed by the kernel's OOM killer" in message and "limit 256.0 MiB" in message, message
        assert took < 1.0 * TIME_SCALE, f"{took:.3f} s from STARTED to FAILURE"
        assert app.small.delay().get(timeout=30 * TIME_SCALE) == "ok"  # the worker goes on
        with open(os.path.join(container_group, "memory.events")) as events:
            assert "oom_kill 1" in events.read().splitlines()
    finally:
        code = run.stop()
    assert code == 0, run.text()  # SIGTERM to the agent is Celery's warm shutdown
    kills = [line for line in agent_lines(run.text()) if "OOM killer" in line]
    assert len(kills) == 1, run.text()
