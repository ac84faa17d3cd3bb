"""Overhead: throughput of 2,000 no-op tasks on the same prefork worker (2 children, its own cgroup
and embedded Redis), bare, watched by oomlab (the probe in every child, the sampler at 100 Hz and
the monitor), watched by oomlab with `--profile` on every task (the same, plus memray's tracker in
each pool child and each task's window marked in its capture), and under memray alone (`memray run
--follow-fork`, what a user would reach for), in alternating rounds of one run.

--profile's figure is its slowdown against bare beside memray's own: (bare / oomlab --profile) over
(bare / memray), the same no-op tasks in the same run; the target is at most 2."""

from __future__ import annotations

import collections
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from oomlab.observe.monitor import Monitor
from oomlab.observe.sampler import Sampler
from oomlab.worker import proc
from oomlab.worker.broker import EmbeddedRedis
from oomlab.worker.launch import worker_argv
from oomlab.worker.temp_dir import worker_temp_dir

from bench import report
from bench.group import leased_group

TASKS = 2000
ROUNDS = 4
PROFILED = "oomlab --profile"
MODES = ("bare", "oomlab", PROFILED, "memray")
TARGET_OVERHEAD = 2.0  # percent
TARGET_PROFILE_RATIO = 2.0  # --profile's slowdown over memray's own, on the same tasks
TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny.py")


def _argv(mode: str, tmp: str, queue: str) -> list[str]:
    # the worker oomlab starts, without task events (the benchmark measures the probe and the watchers)
    celery = worker_argv("prefork", 2, queue, f"bench-{queue}@localhost", task_events=False)[1:]
    if mode == "memray":
        # `memray run` takes no interpreter flags: the worker's -P (no working directory on sys.path)
        # goes into the environment instead
        celery = [arg for arg in celery if arg != "-P"]
        return [
            sys.executable,
            "-m",
            "memray",
            "run",
            "--follow-fork",
            "-q",
            "-o",
            os.path.join(tmp, "memray.bin"),
            *celery,
        ]
    return [sys.executable, *celery]


@dataclass
class Round:
    per_s: float  # from the first send to the last result stored
    achieved_per_s: float  # between the first and the last task done (Celery's `date_done`), as a load run counts
    client_cpu_s: float  # the sending client's CPU: publishing every task, then polling for the results


def one_round(mode: str, tasks: int = TASKS) -> float:
    """Tasks per second for one worker in `mode`, from the first send to the last result stored."""
    return timed_round(mode, tasks).per_s


def timed_round(mode: str, tasks: int = TASKS) -> Round:
    threads: list[Monitor | Sampler] = []
    worker = None
    with (
        leased_group("bench-overhead", 1 << 30) as (lease, group),
        tempfile.TemporaryDirectory() as tmp,
        worker_temp_dir(lease) as worker_tmp,  # billiard's pymp-* dirs, removed after the worker, as oomlab run's
    ):
        broker = EmbeddedRedis(tmp)
        try:
            broker.start(lease)
            queue = f"bench.{os.path.basename(group.path)}"
            probe = os.path.join(tmp, "probe.jsonl")
            open(probe, "w").close()
            watched = mode in ("oomlab", PROFILED)
            profiles = os.path.join(tmp, "profiles")
            os.makedirs(profiles)
            conf = {"broker_url": broker.url, "result_backend": broker.url, "task_default_queue": queue}
            env = {
                **os.environ,
                "OOMLAB_SCENARIO": TINY,
                "OOMLAB_CELERY_CONF": json.dumps(conf),
                "OOMLAB_QUEUE": queue,
                "OOMLAB_PROBE": "1" if watched else "0",
                "OOMLAB_PROBE_PATH": probe if watched else "",
                "OOMLAB_PROFILE": "bench.noop" if mode == PROFILED else "",  # as `oomlab run --profile`
                "OOMLAB_PROFILE_DIR": profiles if mode == PROFILED else "",
                **({"PYTHONSAFEPATH": "1"} if mode == "memray" else {}),
                "TMPDIR": worker_tmp,
            }
            log = os.path.join(tmp, "worker.log")
            worker = proc.spawn(_argv(mode, tmp, queue), log_path=log, env=env, join_cgroup=group.procs_file)
            lease.add_process(worker.pid)
            if watched:
                monitor = Monitor(group, probe, emulate_group_kill=False)
                sampler = Sampler(group, tmp, rss_hz=100.0, on_new_pid=monitor.watch_pid)
                threads = [monitor, sampler]
                for thread in threads:
                    thread.start()
            _wait_ready(log, worker)
            result = _throughput(conf, tasks)
            if mode == PROFILED:
                _check_profiled(probe, tasks)
            return result
        finally:
            for thread in threads:
                thread.stop()
            if worker is not None:
                proc.stop(worker, grace=5.0, on_timeout=group.kill_all)
            broker.stop()


def _check_profiled(probe: str, tasks: int, patience_s: float = 5.0) -> None:
    """Every task's window was marked in a capture: the figure is for profiling that happened. The
    window's end is written at task_postrun, which Celery sends after it stores the result the client
    read, so the last task's end may follow the throughput's end by a moment: waited for, not counted."""
    deadline = time.monotonic() + patience_s
    while True:
        with open(probe) as handle:
            windows = sum(1 for line in handle if '"ev": "profile_end"' in line)
        if windows == tasks:
            return
        if windows > tasks or time.monotonic() > deadline:
            raise RuntimeError(f"--profile marked {windows} of {tasks} tasks' windows; see {probe}")
        time.sleep(0.05)


def _wait_ready(log: str, worker, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log, errors="replace") as handle:
            if " ready." in handle.read():
                return
        if worker.poll() is not None:
            with open(log, errors="replace") as handle:
                tail = handle.read()[-1500:]
            raise RuntimeError(f"the worker exited; its log ends:\n{tail}")
        time.sleep(0.05)
    raise RuntimeError(f"the worker was not ready within {timeout:.0f} s; see {log}")


def _throughput(conf: dict, tasks: int) -> Round:
    from celery import Celery

    client = Celery("bench-client")
    client.conf.update(conf)
    ids = [str(uuid.uuid4()) for _ in range(tasks)]
    redis = client.backend.client
    cpu = time.process_time()
    started = time.monotonic()
    with client.producer_or_acquire() as producer:
        for index, task_id in enumerate(ids):
            client.send_task("bench.noop", args=(index,), task_id=task_id, producer=producer)
    done = _wait_done([client.backend.get_key_for_task(task_id) for task_id in ids], redis)
    elapsed = time.monotonic() - started
    cpu = time.process_time() - cpu
    done.sort()
    client.close()
    return Round(tasks / elapsed, (tasks - 1) / (done[-1] - done[0]).total_seconds(), cpu)


def _wait_done(keys: list[str], redis, chunk: int = 100) -> list[datetime]:
    """Each task's date_done once every one is stored done (not only started). Read a small chunk at a
    time from the oldest still pending: tasks end about in the order sent, so each key is read about
    once. Every read is CPU off the worker's two cores (asking for all of a million keys every 10 ms,
    then for the oldest 1,000, took 68 % of a core and held bare Celery to ~200 tasks/s); the figure
    comes from each task's own date_done, so how soon a key is read does not count."""
    done: list[datetime] = []
    pending = collections.deque(keys)
    while pending:
        head = [pending.popleft() for _ in range(min(chunk, len(pending)))]
        left = []
        for key, meta in zip(head, redis.mget(head), strict=True):
            stored = json.loads(meta) if meta is not None else {}
            if stored.get("date_done"):
                done.append(datetime.fromisoformat(stored["date_done"]))
            else:
                left.append(key)
        pending.extendleft(reversed(left))
        if left:
            time.sleep(0.01)
    return done


def probe_cost_per_task(calls: int = 2000) -> float:
    """Seconds of CPU the probe's prerun + postrun handlers take per task, called directly in a forked
    child (no Celery, no scheduling noise): the part of the overhead that sits in every task."""
    from oomlab.testing.measure import measure_peak

    def handlers() -> float:
        with tempfile.NamedTemporaryFile() as sink:
            os.environ["OOMLAB_PROBE_PATH"] = sink.name
            from oomlab.probe import recorder as probe

            task = type("Task", (), {"name": "bench.noop", "request": None})()
            started = time.thread_time()
            for _ in range(calls):
                probe._on_prerun(task_id="id", task=task)
                probe._on_postrun(task_id="id", task=task, state="SUCCESS")
            return (time.thread_time() - started) / calls

    return measure_peak(handlers).value


def main(results_dir: str) -> dict:
    out = report.console()
    per_task = probe_cost_per_task()
    out.print(
        f"the probe's handlers: {per_task * 1e6:.0f} µs of CPU per task (prerun + postrun, {2000} calls in a child)"
    )
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(ROUNDS):
        for mode in MODES:
            rates[mode].append(one_round(mode, TASKS))
    medians = {mode: statistics.median(values) for mode, values in rates.items()}
    bare = medians["bare"]
    rows = [
        [
            mode,
            f"{medians[mode]:.0f} tasks/s",
            " / ".join(f"{v:.0f}" for v in rates[mode]),
            report.pct((bare - medians[mode]) / bare * 100) if mode != "bare" else "-",
        ]
        for mode in MODES
    ]
    report.table(
        f"throughput of {TASKS} no-op tasks, prefork × 2 (median of {ROUNDS} alternating rounds)",
        ["worker", "throughput", "rounds", "overhead"],
        rows,
        out,
    )
    overhead = (bare - medians["oomlab"]) / bare * 100
    report.target(
        out, f"oomlab's overhead on throughput ≤ {TARGET_OVERHEAD:g} % ({overhead:.2f} %)", overhead <= TARGET_OVERHEAD
    )
    data = saved(rates, per_task)
    report.target(
        out,
        f"--profile's slowdown ≤ {TARGET_PROFILE_RATIO:g}× memray's own (bare/--profile "
        f"{data['profile_slowdown']:.2f}× against bare/memray {data['memray_slowdown']:.2f}×: "
        f"{data['profile_to_memray_ratio']:.2f})",
        data["profile_to_memray_ratio"] <= TARGET_PROFILE_RATIO,
    )
    return data


def saved(rates: dict[str, list[float]], per_task: float) -> dict:
    """The figures saved as JSON: every round's rate, the medians and the overheads against bare."""
    medians = {mode: statistics.median(values) for mode, values in rates.items()}
    bare = medians["bare"]
    return {
        "tasks": TASKS,
        "rates": rates,
        "medians": medians,
        "oomlab_overhead_percent": (bare - medians["oomlab"]) / bare * 100,
        "probe_cpu_seconds_per_task": per_task,
        "memray_overhead_percent": (bare - medians["memray"]) / bare * 100,
        **profile_figures(medians),
    }


def profile_figures(medians: dict[str, float]) -> dict:
    """--profile's slowdown against bare, memray's own, and the one over the other (the target's figure)."""
    if PROFILED not in medians:
        return {}
    profiled, memray = medians["bare"] / medians[PROFILED], medians["bare"] / medians["memray"]
    return {
        "profile_overhead_percent": (medians["bare"] - medians[PROFILED]) / medians["bare"] * 100,
        "profile_slowdown": profiled,
        "memray_slowdown": memray,
        "profile_to_memray_ratio": profiled / memray,
    }
