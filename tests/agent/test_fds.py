"""The agent's file descriptors against a local user: a flood of connections to its metrics port
neither exhausts them nor blinds its kill detection; fds numbered past 1024 (select's limit) are
waited on like any; a pool child whose pidfd cannot be opened (EMFILE) is still watched, and said once."""

from __future__ import annotations

import os
import resource
import signal
import socket
import sys
import time
import urllib.request

import psutil
import pytest

from tests.agent.conftest import wait_oomkilled, wait_state
from tests.conftest import TIME_SCALE

pytestmark = [pytest.mark.integration, pytest.mark.services]

FLOOD = 1400  # what the review held open: the agent's fds went past 1024, the next pidfd got 1167
# execs its arguments holding 1100 fds open: every fd the agent opens is numbered above 1100
HIGH_FDS = (
    "import os, sys\n"
    "for _ in range(1100): os.set_inheritable(os.open('/dev/null', os.O_RDONLY), True)\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nofile_at_least(count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(count, hard), hard))


def _flood(port: int, count: int) -> list[socket.socket]:
    """`count` connections to the port, each sending half a request line and then nothing."""
    held = []
    for _ in range(count):
        connection = socket.socket()
        connection.settimeout(0.2)
        try:
            connection.connect(("127.0.0.1", port))
            connection.send(b"GET /metr")
        except OSError:  # the listen backlog full for a moment: the next one is tried
            connection.close()
            continue
        held.append(connection)
    return held


def _agent_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        return response.read().decode()


def _kills(text: str) -> dict[tuple[str, str, str], float]:
    """oomlab_oom_kills_total by (task, queue, role), parsed as Prometheus would."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.labels["task"], sample.labels["queue"], sample.labels["role"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "oomlab_oom_kills_total"
    }


def test_a_flood_of_connections_to_the_metrics_port_blinds_nothing(agent_run):
    port = _free_port()
    _nofile_at_least(FLOOD + 500)
    with agent_run() as run:
        agent = run.start("--memory", "256MiB", "--metrics", str(port))
        run.wait_ready()
        mod = run.app()
        before = _agent_fds(agent.pid)
        held = _flood(port, FLOOD)
        try:
            time.sleep(0.5)
            fds, threads = _agent_fds(agent.pid), _threads(agent.pid)
            print(f"{len(held)} connections held: the agent has {fds} fds (before: {before}), {threads} threads")
            assert fds < before + 40 and threads < 40
            # the first kill's replacement pool child gets its pidfd now: the second kill is seen through it
            for _ in range(2):
                wait_oomkilled(mod.hog.delay(600), timeout=30 * TIME_SCALE)
        finally:
            for connection in held:
                connection.close()
        deadline = time.monotonic() + 15 * TIME_SCALE  # the held ones time out
        while True:
            try:
                text = _scrape(port)
                break
            except OSError:
                assert time.monotonic() < deadline, "the metrics port never served again"
                time.sleep(0.2)
        assert _kills(text) == {("user_app.hog", run.queue, "pool child"): 2.0}
        assert "the watcher failed" not in run.text()


def test_fds_numbered_past_1024_are_watched(agent_run):
    """Every fd of the agent above 1100 (it inherited that many): its kernel log, notifier, probe socket
    and pidfds are waited on with poll, not select, which refuses them."""
    _nofile_at_least(2048)
    with agent_run() as run:
        run.start("--memory", "256MiB", wrap=(sys.executable, "-c", HIGH_FDS))
        run.wait_ready()
        mod = run.app()
        _, fresh = wait_oomkilled(mod.hog.delay(600), timeout=30 * TIME_SCALE)
        assert "kernel's OOM killer" in str(fresh.result)
        assert "the watcher failed" not in run.text()


def _no_fd_left(pid: int, child: int) -> int:
    """The NOFILE limit that leaves `pid` no fd to open, even once its pidfd of `child` is closed: the
    lowest fd number free now, or that pidfd's if lower (fds at or above the limit stay usable)."""
    used = {int(name) for name in os.listdir(f"/proc/{pid}/fd")}
    limit = min(set(range(max(used) + 2)) - used)
    for fd in used:
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                if f"Pid:\t{child}\n" in info.read():
                    limit = min(limit, fd)
        except FileNotFoundError:
            pass
    return limit


def _pool_child(worker_main: int, not_this: int | None = None, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout * TIME_SCALE
    while time.monotonic() < deadline:
        children = [c.pid for c in psutil.Process(worker_main).children() if c.pid != not_this]
        if children:
            return children[0]
        time.sleep(0.05)
    raise AssertionError("no pool child came")


def _wait_line(run, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout * TIME_SCALE
    while text not in run.text():
        assert time.monotonic() < deadline, f"never said: {text}\n{run.text()}"
        time.sleep(0.05)


def test_a_pool_child_without_a_pidfd_is_still_watched(agent_run):
    """The agent out of fds (its NOFILE limit lowered to what it holds, as a flood under systemd's 1024
    would leave it): a new pool child's pidfd fails with EMFILE; the agent says so once, sees that
    child's SIGKILL with no fd at all, and once fds are free again attributes a task's kill in it."""
    with agent_run() as run:
        agent = run.start()
        run.wait_ready()
        mod = run.app()
        worker_main = psutil.Process(agent.pid).children()[0].pid
        first = _pool_child(worker_main)
        time.sleep(1.0 * TIME_SCALE)  # the worker's app line read (the repairer tries the backend then)
        limits = resource.prlimit(agent.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(agent.pid, resource.RLIMIT_NOFILE, (_no_fd_left(agent.pid, first), limits[1]))
        try:
            os.kill(first, signal.SIGKILL)
            _wait_line(run, f"no task known in pool child pid {first} was killed by SIGKILL")
            second = _pool_child(worker_main, not_this=first)
            _wait_line(run, "cannot open a pidfd for a pool child (Too many open files)")
            os.kill(second, signal.SIGKILL)  # watched with no fd left: seen once its parent reaps it
            _wait_line(run, f"no task known in pool child pid {second} was killed by SIGKILL")
            third = _pool_child(worker_main, not_this=second)
            time.sleep(1.0 * TIME_SCALE)  # its start read (and its pidfd refused) before fds are free again
        finally:
            resource.prlimit(agent.pid, resource.RLIMIT_NOFILE, limits)
        result = mod.linger.delay(60)
        wait_state(result, ("STARTED",))
        os.kill(third, signal.SIGKILL)
        _, fresh = wait_oomkilled(result, timeout=30 * TIME_SCALE)
        assert f"pool child pid {third} was killed by SIGKILL" in str(fresh.result)
        assert run.text().count("cannot open a pidfd for a pool child") == 1
