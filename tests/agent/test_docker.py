"""`oomlab agent` as a container's entrypoint on the machine's Docker engine: unprivileged (a non-root
user, every capability dropped), under the container's own `mem_limit`, the agent is PID 1 and
reads the container's memory cgroup as the container sees it. A task that needs more than the limit
reads FAILURE with OOMKilled through AsyncResult, said once in the agent's log, and `docker stop`
is the worker's warm shutdown.

The image is the worker image (oomlab from a wheelhouse made on the host, on OOMLAB_DOCKER_BASE);
the user's app is mounted read-only. Host networking reaches the test's Redis on 127.0.0.1."""

from __future__ import annotations

import time

import pytest
from oomlab.worker import proc
from oomlab.worker.docker.engine import DEFAULT_BASE, worker_image

from bench.agent_common import agent_container
from tests.agent.conftest import HERE, REDIS, AgentRun, locked_bytes, wait_oomkilled, wait_state
from tests.conftest import TIME_SCALE

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.services]

LIMIT = 256 * 2**20


def start_container(run: AgentRun, image: str):
    env = {k: v for k, v in run.env.items() if k.startswith("AGENT_TEST_")}
    command = ["celery", "-A", "user_app", "worker", "-c", "1", "-l", "info", "-n", run.node]
    return agent_container(image, command, run.name, LIMIT, (str(HERE), "/app"), {**env, "PYTHONPATH": "/app"})


def memlock_limit(pid: int) -> int:
    """A process's soft RLIMIT_MEMLOCK (8 MiB in Docker's default container), read on the host."""
    with open(f"/proc/{pid}/limits") as limits:
        return next(int(line.split()[3]) for line in limits if line.startswith("Max locked memory"))


def wait_logged(container, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = container.logs().decode(errors="replace")
        if text in logs:
            return logs
        container.reload()
        assert container.status == "running", logs
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never logged:\n{container.logs().decode(errors='replace')}")


def test_the_agent_as_an_unprivileged_entrypoint_repairs_an_oom_killed_task(tmp_path):
    image = worker_image(DEFAULT_BASE)  # DockerUnavailable (a failure, not a skip) without an engine
    run = AgentRun(tmp_path, broker=REDIS, backend=REDIS)
    container = start_container(run, image)
    try:
        logs = wait_logged(container, " ready.")
        assert "/dev/kmsg is not readable here" in logs  # Docker gives a container no kernel log
        assert "runs unwatched by the cgroup" not in logs  # the container's own group is readable
        container.reload()
        agent = container.attrs["State"]["Pid"]
        # the agent shares the container's group: its code is locked in memory once the worker is ready, within
        # the unprivileged RLIMIT_MEMLOCK, so reclaim at the limit cannot make it wait for the kill to be seen
        locked = proc.wait_until(lambda: locked_bytes(agent) > 0, 10.0, 0.05)
        assert locked, container.logs().decode(errors="replace")
        assert locked_bytes(agent) <= memlock_limit(agent)
        assert "cannot keep the agent's code in memory" not in container.logs().decode(errors="replace")
        app = run.app()
        result = app.hog.delay(600)
        wait_state(result, ("STARTED",), timeout=30)
        took, result = wait_oomkilled(result)
        message = str(result.result)
        assert "killed by the kernel's OOM killer" in message and "limit 256.0 MiB" in message, message
        assert took < 1.0 * TIME_SCALE, f"{took:.3f} s from STARTED to FAILURE"
        assert app.small.delay().get(timeout=30) == "ok"  # the worker goes on
        # one kill, said once (named from the kill counter before its exit, or at its exit: both are one line)
        said = [line for line in container.logs().decode(errors="replace").splitlines() if "OOM killer" in line]
        assert len(said) == 1, said

        container.reload()
        with open(f"/proc/{container.attrs['State']['Pid']}/cmdline", "rb") as handle:
            assert b"oomlab\0agent" in handle.read()  # the container's PID 1 is the agent
        top = container.top(ps_args="-o pid,user,args")["Processes"]
        assert all(user in ("nobody", "65534") for _, user, _ in top), top
        container.stop(timeout=30)  # SIGTERM to PID 1, the agent: Celery's warm shutdown
        assert container.wait(timeout=30)["StatusCode"] == 0, container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
        run.cleanup()
