"""The plan's fleet proven by running it: N replicas, each a real Celery worker under `oomlab agent
--memory LIMIT --events STREAM` in a memory cgroup of its own (local processes), a private redis-server
on 127.0.0.1 (a password of the run's, given by environment) as broker, result backend and event stream,
and the fleet controller (oomlab.workflows.fleet) sending the rate. A machine smaller than the plan
proves as many replicas as it holds (cores and memory) at that share of the rate, and says so.

The verdict reads the fleet record (fleet.json): kills per replica, the throughput reached, the queue
wait; it becomes the proof's LoadResult, so a refuted fleet is refused exactly as a refuted replica is."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from oomlab.config.events_url import parse_events_url
from oomlab.config.load_shapes import LoadShape
from oomlab.config.options import RunConfig
from oomlab.config.scenario import Scenario
from oomlab.config.sizes import format_size
from oomlab.errors import WorkerStartFailed
from oomlab.record.fleet import FleetRecord, FleetTask
from oomlab.record.load import RecyclingFigures, SoakFindings
from oomlab.run.load.soak import MIN_TASKS_PER_CHILD, Soak
from oomlab.trust import import_env, open_in_dir, private_dir, python_argv
from oomlab.worker.broker import redis_server_binary
from oomlab.worker.celery_env import without_celery_env
from oomlab.worker.proc import wait_until
from oomlab.workflows.fleet.run import FleetOptions, FleetRun
from oomlab.workflows.recommend.throughput import LoadResult

PROCESSES_PER_CORE = 2  # worker processes (every replica's pool) this machine gives each core at most
MEMORY_SHARE = 0.5  # of MemAvailable, for the replicas' limits together
EVENTS_ENV = "OOMLAB_PROOF_EVENTS"
HELLO_S = 60.0


@dataclass
class FleetScale:
    planned: int  # the plan's replicas
    proved: int  # how many this machine holds (cores and memory)
    by_cores: int
    by_memory: int
    cores: int
    available_bytes: int | None

    @property
    def scaled(self) -> bool:
        return self.proved < self.planned

    def share(self, rate: float) -> float:
        return round(rate * self.proved / self.planned, 3)

    def sentence(self, rate: float, limit_bytes: int) -> str:
        """What was proved against what was planned, and why (the console, the JSON and the HTML)."""
        at = f"{self.share(rate):g}/s"
        if not self.scaled:
            return f"proved {self.proved} of {self.planned} replicas at the whole rate ({at})"
        held = (
            f"this machine holds {self.proved}: {self.cores} core(s) give {self.by_cores} "
            f"({PROCESSES_PER_CORE} worker processes a core), "
            + (
                f"{format_size(self.available_bytes)} available gives {self.by_memory} of {format_size(limit_bytes)}"
                if self.available_bytes is not None
                else "its available memory is unknown"
            )
        )
        return (
            f"proved {self.proved} of {self.planned} replicas at {self.proved}/{self.planned} of the rate "
            f"({at} of {rate:g}/s): {held}"
        )


@dataclass
class ReplicaFigures:
    name: str
    tasks_run: int
    succeeded: int
    killed: int
    group_peak_bytes: int | None


@dataclass
class FleetProof:
    scale: FleetScale
    sentence: str
    fleet_dir: str = ""  # the fleet run's record (fleet.json)
    logs_dir: str = ""  # each replica's agent and worker log, rN.log
    replicas: list[ReplicaFigures] = field(default_factory=list)
    missing: int = 0
    lost: int = 0
    rate: float = 0.0  # the plan's whole rate (the fleet was sent scale.share(rate))
    throughput_per_s: float | None = None  # fleet.json's: tasks final per second, first send to last end
    latency_p95_s: float | None = None
    wait_p95_s: float | None = None


def available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def fleet_scale(planned: int, pool: str, concurrency: int, limit_bytes: int, cores: int | None = None) -> FleetScale:
    """How many of the plan's replicas this machine can run at once: each replica's worker processes (a
    prefork pool's children; one process for threads or gevent) at most PROCESSES_PER_CORE a core, and
    their limits within MEMORY_SHARE of the memory available now; at least one."""
    cores = cores or os.cpu_count() or 1
    processes = concurrency if pool == "prefork" else 1
    by_cores = max(1, PROCESSES_PER_CORE * cores // max(1, processes))
    available = available_bytes()
    by_memory = max(1, int(available * MEMORY_SHARE) // limit_bytes) if available else 1
    proved = max(1, min(planned, by_cores, by_memory))
    return FleetScale(planned, proved, by_cores, by_memory, cores, available)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _app_ref(scenario: Scenario) -> str:
    return scenario.app_ref or f"{scenario.module.__name__}:app"


def _worker_argv(scenario: Scenario, config: RunConfig, name: str, queue: str, token: str) -> list[str]:
    conf = config.celery_conf
    recycling = []
    if conf.get("worker_max_tasks_per_child"):
        recycling += ["--max-tasks-per-child", str(conf["worker_max_tasks_per_child"])]
    if conf.get("worker_max_memory_per_child"):
        recycling += ["--max-memory-per-child", str(conf["worker_max_memory_per_child"])]
    return python_argv(
        "-m", "celery", "-A", _app_ref(scenario), "worker", "-Q", queue, "--pool", config.pool,
        "--concurrency", str(config.concurrency), "-n", f"{name}@{token}", "--prefetch-multiplier", "1",
        "--without-mingle", "--without-gossip", "--loglevel", "INFO", *recycling,
    )  # fmt: skip


def run_fleet(
    scenario: Scenario,
    config: RunConfig,
    scale: FleetScale,
    rate: float,
    seconds: float,
    say: Callable[[str], None],
) -> tuple[LoadResult, FleetProof]:
    """The scaled fleet at its share of the rate for `seconds`: (the proof's LoadResult, the fleet's figures)."""
    token = secrets.token_hex(4)
    logs = private_dir(os.path.join(os.path.abspath(config.results_dir), f"fleet-proof-{token}"), "fleet proof logs")
    password, port = secrets.token_hex(16), _free_port()
    base = f"redis://:{password}@127.0.0.1:{port}"
    stream, queue = f"proof-{token}", f"oomlab.proof.{token}"
    processes: list[subprocess.Popen[bytes]] = []
    with open_in_dir(os.path.join(logs, "redis.conf"), "w") as conf:  # the password in a file of the run's, not argv
        os.fchmod(conf.fileno(), 0o600)
        conf.write(f'port {port}\nbind 127.0.0.1\nrequirepass {password}\nsave ""\nappendonly no\ndir {logs}\n')
    try:
        with open_in_dir(os.path.join(logs, "redis.log"), "ab") as out:
            redis = subprocess.Popen(
                [redis_server_binary(), os.path.join(logs, "redis.conf")],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        processes.append(redis)
        import redis as redis_client

        client = redis_client.Redis.from_url(f"{base}/0", socket_connect_timeout=0.5)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except (redis_client.ConnectionError, redis_client.TimeoutError, OSError):
                return redis.poll() is not None

        wait_until(answers, 10.0, 0.05)
        client.close()
        os.unlink(os.path.join(logs, "redis.conf"))  # read at its start: the password is kept nowhere on disk
        env = without_celery_env(dict(os.environ))
        env.update(
            {
                "CELERY_BROKER_URL": f"{base}/0",
                "CELERY_RESULT_BACKEND": f"{base}/0",
                EVENTS_ENV: f"{base}/1/{stream}",
                **import_env(),
                "PYTHONUNBUFFERED": "1",
            }
        )
        names = [f"r{i}" for i in range(1, scale.proved + 1)]
        for name in names:
            argv = python_argv(
                "-m", "oomlab", "agent", "--memory", f"{config.memory_bytes}B", "--events-from-env", EVENTS_ENV,
                "--replica", name, "--", *_worker_argv(scenario, config, name, queue, token),
            )  # fmt: skip
            with open_in_dir(os.path.join(logs, f"{name}.log"), "ab") as out:
                processes.append(
                    subprocess.Popen(
                        argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=logs, start_new_session=True
                    )
                )
        options = FleetOptions(
            events=parse_events_url(f"{base}/1/{stream}", "the proof's stream", from_argv=False),
            replicas=scale.proved,
            replica_names=names,
            broker=f"{base}/0",
            result_backend=f"{base}/0",
            queue=queue,
            variant=config.variant,
            params=dict(config.params or {}),
            shape=LoadShape("rate", seconds, rate=scale.share(rate), seed=0),
            hello_timeout_s=config.start_timeout or HELLO_S,
            results=config.results_dir,
        )
        run = FleetRun(scenario, options, say)
        try:
            record = run.execute()
        except WorkerStartFailed as failed:  # no replica said hello: none started under the limit
            say(f"the fleet did not start: {failed} (each replica's log: {logs})")
            return _not_started(logs, scale, rate, seconds, config.memory_bytes)
    finally:
        for process in reversed(processes):  # the agents (Celery's warm shutdown), then Redis
            _stop(process)
    figures = _figures(record, run.run_dir, scale, rate)
    figures.logs_dir = logs
    return _as_load_result(record, run.run_dir, scale.share(rate), seconds), figures


def _not_started(
    logs: str, scale: FleetScale, rate: float, seconds: float, limit_bytes: int
) -> tuple[LoadResult, FleetProof]:
    run = LoadResult(logs, "worker_start_failed", scale.share(rate), seconds, None, None, 0, 0, None)
    sentence = scale.sentence(rate, limit_bytes) + f"; no replica started ({scale.proved} missing)"
    return run, FleetProof(scale, sentence, logs_dir=logs, missing=scale.proved, rate=rate)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _as_load_result(record: FleetRecord, run_dir: str, rate: float, seconds: float) -> LoadResult:
    f = record.figures
    status: str = record.status
    if record.missing:
        status = "worker_start_failed"  # a replica that never said hello carried nothing
    elif f.lost:
        status = "tasks_lost"
    done = [t for t in record.tasks if t.outcome in ("succeeded", "failed")]
    times = [t.runtime_s for t in done if t.runtime_s is not None]
    recycled = sum(r.child_exits for r in record.replicas)
    return LoadResult(
        run_dir,
        status,
        rate,
        seconds,
        _per_s([t.ended_s for t in done if t.ended_s is not None]),
        f.wait_p95_s,
        len(record.kills),
        recycled,
        f.group_peak_bytes,
        _per_s([t.sent_s for t in record.tasks]),
        len(done),
        sum(times) / len(times) if times else None,
        None,
        RecyclingFigures(
            children_recycled=recycled,
            replacement_basis="the agents' pool child exits (a replacement's cost is one worker's load run's figure)",
        ),
        _soak(done),
    )


def _soak(done: list[FleetTask]) -> SoakFindings:
    """The leak slope over the fleet's pool children: each child's exact task peaks in the order it ran
    them (its leaf's tree peak, reset at each task's start, holds what earlier tasks kept), fitted as one
    worker's soak fits its children's memory after each task."""
    soak = Soak(0)
    children: dict[tuple[str, int], int] = {}
    for task in sorted(done, key=lambda t: t.ended_s or 0.0):
        if task.replica is None or task.pid is None or task.ended_s is None or not task.peak_bytes:
            continue
        key = children.setdefault((task.replica, task.pid), len(children))
        soak.observe(key, task.ended_s, task.peak_bytes)
    slope, per_second, r2 = soak.per_task_slope(), soak.per_second_slope(), soak.r2()
    return SoakFindings(
        children_measured=sum(1 for c in soak.children.values() if c.tasks >= MIN_TASKS_PER_CHILD),
        growth_per_1000_tasks_per_child_bytes=None if slope is None else round(slope * 1000),
        growth_per_hour_per_child_bytes=None if per_second is None else round(per_second * 3600),
        significant=soak.significant(),
        r2=None if r2 is None else round(r2, 3),
        fit=soak.fit(),
    )


def _per_s(moments: list[float]) -> float | None:
    """Events per second between the first and the last (n-1 intervals), as one worker's load figures
    count them (achieved: task ends; offered: sends), so a fleet that keeps up achieves what was offered."""
    if len(moments) < 2 or max(moments) <= min(moments):
        return None
    return round((len(moments) - 1) / (max(moments) - min(moments)), 3)


def _figures(record: FleetRecord, run_dir: str, scale: FleetScale, rate: float) -> FleetProof:
    limit = max((r.limit_bytes or 0) for r in record.replicas) if record.replicas else 0
    return FleetProof(
        scale,
        scale.sentence(rate, limit),
        fleet_dir=run_dir,
        replicas=[
            ReplicaFigures(r.name, r.tasks_run, r.succeeded, r.killed, r.group_peak_bytes) for r in record.replicas
        ],
        missing=record.missing,
        lost=record.figures.lost,
        rate=rate,
        throughput_per_s=record.figures.throughput_per_s,
        latency_p95_s=record.figures.latency_p95_s,
        wait_p95_s=record.figures.wait_p95_s,
    )
