"""`oomlab agent`'s honest costs, against the same worker run bare: the agent's own RSS, the probe's
CPU per task in the pool children (a no-op task timed with and without the probe loader), the
throughput of no-op tasks (alternating rounds), and how fast the agent sees an OOM kill (the kernel
log's stamp of each kill to the agent seeing the pool child gone, as the agent itself reports it in
its alert webhook's `detection_s`).

Both workers run `celery -A bench.agent_app worker` (prefork × 2) on an embedded Redis, in a leased
memory cgroup of the benchmark's own; the detection part runs the agent with `--memory 256MiB` (a
cgroup of its own, /dev/kmsg readable as root) and kills a pool child KILLS times; where a Docker
engine is reachable, the same KILLS kills in a container with the agent as its entrypoint
(bench/agent_container.py: the kernel log read on the host, the agent's seen time from its alert)."""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import psutil
from oomlab.record.schema import Spread
from oomlab.worker import proc
from oomlab.worker.broker import EmbeddedRedis
from oomlab.worker.docker.engine import DockerUnavailable
from oomlab.worker.temp_dir import worker_temp_dir

from bench import agent_container, report
from bench.agent_common import receiver, worker
from bench.group import leased_group
from bench.overhead import _throughput, _wait_ready

TASKS = 2000
ROUNDS = 4
KILLS = 20
MODES = ("bare", "agent")
TARGET_RSS = 30 * 2**20
TARGET_PER_TASK_S = 50e-6
TARGET_DETECTION_P95_S = 0.005
TARGET_THROUGHPUT_PERCENT = 2.0
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _argv(mode: str, queue: str, *agent_args: str) -> list[str]:
    if mode == "bare":
        return worker(queue, [sys.executable])
    return [sys.executable, "-m", "oomlab", "agent", *agent_args, "--", *worker(queue, [sys.executable])]


def _env(url: str, queue: str, tmp: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CELERY_LOADER"}  # bare is bare
    return {**env, "BENCH_AGENT_REDIS": url, "BENCH_AGENT_QUEUE": queue, "PYTHONPATH": REPO, "TMPDIR": tmp}


def _pool_cpu(worker_main: psutil.Process) -> float:
    """CPU seconds the worker's pool children have used so far."""
    total = 0.0
    for child in worker_main.children():
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def _worker_main(process, mode: str) -> psutil.Process:
    top = psutil.Process(process.pid)
    return top if mode == "bare" else top.children()[0]


@contextlib.contextmanager
def _running_worker(mode: str, *agent_args: str) -> Iterator[tuple[Any, str, str]]:
    """The bench's worker (bare, or under `oomlab agent` with `agent_args`) in a leased group of its own
    on an embedded Redis, ready: (its process, the broker's URL, its queue); stopped after."""
    with (
        leased_group("bench-agent", 1 << 30) as (lease, group),
        tempfile.TemporaryDirectory() as tmp,
        worker_temp_dir(lease) as worker_tmp,  # billiard's pymp-* dirs, removed after the worker, as oomlab run's
    ):
        broker = EmbeddedRedis(tmp)
        process = None
        try:
            broker.start(lease)
            queue = f"bench.agent.{os.path.basename(group.path)}"
            log = os.path.join(tmp, "worker.log")
            env = _env(broker.url, queue, worker_tmp)
            argv = _argv(mode, queue, *agent_args)
            process = proc.spawn(argv, log_path=log, env=env, cwd=REPO, join_cgroup=group.procs_file)
            lease.add_process(process.pid)
            _wait_ready(log, process)
            yield process, broker.url, queue
        finally:
            if process is not None:
                proc.stop(process, grace=10.0, on_timeout=group.kill_all)
            broker.stop()


def one_round(mode: str, tasks: int = TASKS) -> dict:
    """Throughput, the pool children's CPU per task, and (under the agent) the agent's RSS after the tasks."""
    with _running_worker(mode) as (process, url, queue):
        main = _worker_main(process, mode)
        conf = {"broker_url": url, "result_backend": url, "task_default_queue": queue}
        _throughput(conf, 50)  # warm-up: imports, connections and the first pages of every child
        cpu = _pool_cpu(main)
        timed = _throughput(conf, tasks)
        cpu = _pool_cpu(main) - cpu
        figures = {"per_s": timed.per_s, "pool_cpu_s_per_task": cpu / tasks}
        if mode == "agent":
            agent = psutil.Process(process.pid).memory_full_info()
            figures.update(agent_rss_bytes=agent.rss, agent_uss_bytes=agent.uss)
        return figures


def detection(kills: int) -> dict:
    """The agent's own detection time of `kills` pool-child OOM kills, and its RSS after them."""
    server, received = receiver()
    hook = f"http://127.0.0.1:{server.server_port}/"
    try:
        with _running_worker("agent", "--memory", "256MiB", "--alert-webhook", hook) as (process, url, queue):
            from celery import Celery

            client = Celery("bench-agent-client", broker=url, backend=url)
            client.conf.task_default_queue = queue
            for index in range(kills):
                result = client.send_task("bench.hog", args=(600,))
                deadline = time.monotonic() + 60
                while len(received) <= index and time.monotonic() < deadline:
                    time.sleep(0.01)
                result.forget()
                time.sleep(0.3)  # spaced, so the kernel logs every kill
            client.close()
            rss = psutil.Process(process.pid).memory_full_info()
            return {
                "kills": len(received),
                "detection_s": [alert["detection_s"] for alert in received if alert.get("detection_s") is not None],
                "agent_rss_bytes": rss.rss,
                "agent_uss_bytes": rss.uss,
            }
    finally:
        server.shutdown()


_PROBE_MICRO = r"""
import os, socket, sys, time
ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
theirs.setblocking(False)
os.environ["OOMLAB_PROBE_FD"] = str(theirs.fileno())
from celery import Celery, signals
if sys.argv[1] == "agent":
    import oomlab.probe.loader  # what `oomlab agent` loads
elif sys.argv[1] == "lab":
    import oomlab.probe.recorder  # the lab's recorder, every figure of every task
app = Celery("micro", set_as_current=False)
@app.task
def noop():
    pass
if os.fork() == 0:  # a pool child: forked after the handlers were connected
    signals.worker_process_init.send(sender=None)
    rounds = []
    for _ in range(5):
        start = time.process_time()
        for i in range(2000):
            signals.task_prerun.send(sender=noop, task_id="t" * 36, task=noop, args=(), kwargs={})
            signals.task_postrun.send(sender=noop, task_id="t" * 36, task=noop, args=(), kwargs={}, retval=None, state="SUCCESS")
            if i % 50 == 0:
                while True:
                    try:
                        ours.recv(1 << 20, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        break
        rounds.append((time.process_time() - start) / 2000)
    print(min(rounds))
    os._exit(0)
os.wait()
"""


def probe_micro() -> dict[str, float]:
    """The probe's own CPU per task in a forked process (prerun and postrun sent as Celery sends them,
    each datagram sent and drained): best of 5 rounds of 2,000, per probe. Without the worker's noise,
    what the bench's pool-CPU difference cannot resolve on a busy machine."""
    import subprocess

    found = {}
    for which in ("none", "agent", "lab"):
        done = subprocess.run(
            [sys.executable, "-c", _PROBE_MICRO, which], capture_output=True, text=True, cwd=REPO, check=True
        )
        found[which] = float(done.stdout.split()[-1])
    return found


def spread(values: list[float]) -> Spread | None:
    if not values:
        return None
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return Spread(statistics.median(ordered), p95, ordered[-1], len(ordered))


def container_part(kills: int) -> dict:
    """The container's detection, or why Docker could not run it (said in the table, kept in the JSON)."""
    try:
        return agent_container.detection(kills)
    except DockerUnavailable as error:
        return {"unavailable": str(error)}


def _container_summary(found: dict) -> dict:
    if "unavailable" in found:
        return found
    return {
        **found,
        "detection": spread(found["detection_s"]),
        "victim_gone": spread(found["victim_gone_s"]),
        "agent_after_exit": spread(found["agent_after_exit_s"]),
    }


def summarize(
    rounds: dict[str, list[dict]], found: dict, micro: dict[str, float] | None = None, container: dict | None = None
) -> dict:
    rates = {mode: [r["per_s"] for r in rounds[mode]] for mode in MODES}
    medians = {mode: statistics.median(values) for mode, values in rates.items()}
    cpu = {mode: statistics.median(r["pool_cpu_s_per_task"] for r in rounds[mode]) for mode in MODES}
    rss = [r["agent_rss_bytes"] for r in rounds["agent"]]  # no kill yet: Celery, kombu and redis not imported
    uss = [r["agent_uss_bytes"] for r in rounds["agent"]]
    return {
        "tasks": TASKS,
        "rates": rates,
        "medians": medians,
        "throughput_gap_percent": (medians["bare"] - medians["agent"]) / medians["bare"] * 100,
        "pool_cpu_seconds_per_task": cpu,
        "probe_cpu_seconds_per_task": cpu["agent"] - cpu["bare"],
        "agent_rss_bytes_max": max(rss),
        "agent_uss_bytes_max": max(uss),
        "agent_rss_after_repairs_bytes": found["agent_rss_bytes"],  # Celery imported at the first repair
        "agent_uss_after_repairs_bytes": found["agent_uss_bytes"],
        "kills": found["kills"],
        "detection": spread(found["detection_s"]),
        "container": None if container is None else _container_summary(container),
        "probe_micro_seconds_per_task": micro,
        "load_average": list(os.getloadavg()),
    }


def show(data: dict, out) -> None:
    mib = 2**20
    det: Spread | None = data["detection"]
    rows = [
        ["throughput, bare", f"{data['medians']['bare']:.0f} tasks/s", " / ".join(f"{v:.0f}" for v in data["rates"]["bare"])],
        ["throughput, agent", f"{data['medians']['agent']:.0f} tasks/s", " / ".join(f"{v:.0f}" for v in data["rates"]["agent"])],
        ["pool CPU per task, bare", f"{data['pool_cpu_seconds_per_task']['bare'] * 1e6:.0f} µs", "median of rounds"],
        ["pool CPU per task, agent", f"{data['pool_cpu_seconds_per_task']['agent'] * 1e6:.0f} µs", "median of rounds"],
        ["agent RSS (USS), no kill yet", f"{data['agent_rss_bytes_max'] / mib:.1f} MiB", f"{data['agent_uss_bytes_max'] / mib:.1f} MiB unshared"],
        ["detection p50 / p95 / max, host (--memory)", _spread_ms(det), f"{data['kills']} kills"],
        *_container_rows(data.get("container")),
    ]  # fmt: skip
    if micro := data.get("probe_micro_seconds_per_task"):
        rows.append(["probe alone per task (micro)", f"{(micro['agent'] - micro['none']) * 1e6:.1f} µs",
                     f"the lab's recorder {(micro['lab'] - micro['none']) * 1e6:.1f} µs"])  # fmt: skip
    if after := data.get("agent_rss_after_repairs_bytes"):
        rows.append(
            ["agent RSS after its repairs", f"{after / mib:.1f} MiB", "Celery, kombu, redis imported at the first"]
        )
    if load := data.get("load_average"):
        rows.append(["load average (1/5/15 min)", " / ".join(f"{v:.1f}" for v in load), "at the end"])
    report.table(
        f"oomlab agent against the bare worker ({TASKS} no-op tasks, prefork × 2)", ["figure", "value", ""], rows, out
    )
    per_task, gap, rss = data["probe_cpu_seconds_per_task"], data["throughput_gap_percent"], data["agent_rss_bytes_max"]
    report.target(out, f"the agent's RSS ≤ 30 MiB ({rss / mib:.1f} MiB)", rss <= TARGET_RSS)
    report.target(out, f"per-task cost in the worker ≤ 50 µs ({per_task * 1e6:.0f} µs)", per_task <= TARGET_PER_TASK_S)
    if micro := data.get("probe_micro_seconds_per_task"):
        alone = micro["agent"] - micro["none"]
        report.target(out, f"the probe alone ≤ 50 µs per task ({alone * 1e6:.1f} µs)", alone <= TARGET_PER_TASK_S)
    _detection_target(out, "on the host (--memory)", det)
    if (container := data.get("container")) is not None:
        _detection_target(out, "in a container, the agent its entrypoint", container.get("detection"))
    report.target(out, f"throughput within 2 % of the bare worker ({gap:+.2f} %)", gap <= TARGET_THROUGHPUT_PERCENT)


def _spread_ms(det: Spread | None) -> str:
    return "-" if det is None else f"{report.ms(det.p50)} / {report.ms(det.p95)} / {report.ms(det.max)}"


def _container_rows(container: dict | None) -> list[list[str]]:
    if container is None:
        return []
    if "unavailable" in container:
        return [["detection, container (agent as entrypoint)", "not run", container["unavailable"][:80]]]
    mib = 2**20
    return [
        ["detection p50 / p95 / max, container (agent as entrypoint)", _spread_ms(container["detection"]),
         f"{container['kills']} kills, kernel log read on the host"],
        ["  of which the victim's exit (host pidfd)", _spread_ms(container.get("victim_gone")),
         "the kernel's kill to the pool child gone"],
        ["  the agent's seen time after that exit", _spread_ms(container.get("agent_after_exit")),
         "per kill (negative: the host thread woke later)"],
        ["agent RSS in the container after its repairs", f"{container['agent_rss_bytes'] / mib:.1f} MiB",
         f"{container['agent_uss_bytes'] / mib:.1f} MiB unshared"],
    ]  # fmt: skip


def _detection_target(out, where: str, det: Spread | None) -> None:
    p95 = None if det is None else det.p95
    met = None if p95 is None else p95 <= TARGET_DETECTION_P95_S
    report.target(out, f"detection p95 ≤ 5 ms {where} ({report.ms(p95)})", met)


def main(results_dir: str) -> dict:
    rounds: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for _ in range(ROUNDS):
        for mode in MODES:
            rounds[mode].append(one_round(mode))
    micro = probe_micro()
    data = summarize(rounds, detection(KILLS), micro, container_part(KILLS))
    show(data, report.console())
    return data
