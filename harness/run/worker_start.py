"""Starting the worker: its command line and environment, then waiting until it is ready, or one
sentence saying why it never was (an OOM at start-up, a crash loop, a time-out)."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from oomlab.errors import WorkerStartFailed
from oomlab.observe.profiling import profile_dir
from oomlab.observe.startup import failure_message, start_state
from oomlab.probe.events import CHILD_INIT, WORKER_READY
from oomlab.trust import open_in_dir, private_workdir
from oomlab.worker.launch import worker_argv, worker_env
from oomlab.worker.placement import WorkerLaunch
from oomlab.worker.temp_dir import private_temp_dir

if TYPE_CHECKING:
    from oomlab.run.state import RunState


def launch_spec(run: RunState, celery_conf: dict[str, Any]) -> WorkerLaunch:
    config, probe_path = run.config, run.placement.probe_path
    if run.placement.owns_worker:
        open_in_dir(probe_path, "a").close()
    env = worker_env(
        run.scenario,
        celery_conf,
        probe_path,
        run.queue,
        config.params,
        config.variant,
        config.tracemalloc,
        config.queue_arguments,
        config.profile,
        profile_dir(run.run_dir) if config.profile else "",
        config.profile_native,
    )
    env.update(run.placement.worker_env())
    workdir = None
    if run.placement.owns_worker:  # billiard's pymp-* dirs go in a directory of the run's, removed at the end
        env["TMPDIR"] = run.worker_tmp = run.record.worker.tmpdir = private_temp_dir(run.lease)
        # and the worker works in an empty one inside it: Celery puts its working directory first on sys.path
        workdir = private_workdir(run.worker_tmp)
    embedded = run.connection.embedded if run.connection else None
    module = run.scenario.module_ref
    mounts = [run.run_dir, *([os.path.dirname(embedded.socket_path)] if embedded else [])]
    mounts += [os.path.dirname(module)] if module.endswith(".py") else []
    mounts += [env["OOMLAB_APP_PATH"]] if env.get("OOMLAB_APP_PATH") else []  # the user's own app's folder
    argv = worker_argv(
        config.pool, config.concurrency, run.queue, run.hostname, bool(celery_conf.get("worker_send_task_events"))
    )
    return WorkerLaunch(argv, env, mounts, workdir)


def wait_until_ready(run: RunState) -> float:
    """The monotonic time the worker became ready: its main process said so and every pool child
    finished its init. WorkerStartFailed when it died, kept being killed, or took too long."""
    placement, observers, config = run.placement, run.observers, run.config
    assert observers is not None and placement.group is not None
    deadline = time.monotonic() + config.start_timeout
    expected = config.concurrency if config.pool == "prefork" else 0
    while True:
        exited = placement.worker.poll() is not None
        kills = placement.group.oom_kill_count()
        state = start_state(observers.monitor.snapshot(), expected, exited, kills, config.concurrency)
        if state.ready:
            return time.monotonic()
        if state.failed or placement.starting_trouble() or time.monotonic() > deadline:
            time.sleep(0.2)  # let the kernel log and the exits of the last kill arrive
            run.collect()
            if loop := placement.crash_loop(run.record.kills, run.record.worker):
                raise WorkerStartFailed(loop)
            worker = placement.worker
            raise WorkerStartFailed(
                failure_message(
                    state.reason or "timeout",
                    run.record.kills,
                    observers.sampler.snapshot(),
                    worker.pid,
                    config.memory_bytes,
                    config.concurrency,
                    worker.poll(),
                    config.start_timeout,
                    group_oom_kills=placement.group.oom_kill_count(),
                )
            )
        run.each_hook("starting")
        time.sleep(0.05)


def wait_until_ready_again(run: RunState, pid: int, timeout: float | None = None) -> None:
    """A restarted worker (pid) is ready: its worker_ready and, for prefork, its children's init."""
    placement, observers, config = run.placement, run.observers, run.config
    assert observers is not None
    deadline = time.monotonic() + (timeout or config.start_timeout)
    expected = config.concurrency if config.pool == "prefork" else 0
    while time.monotonic() < deadline and placement.worker.poll() is None:
        probe = observers.monitor.snapshot().probe
        ready = any(r["ev"] == WORKER_READY and r["pid"] == pid for r in probe)
        children = {r["pid"] for r in probe if r["ev"] == CHILD_INIT and r.get("ppid") == pid}
        if ready and len(children) >= expected:
            return
        time.sleep(0.05)
    raise WorkerStartFailed(f"the restarted worker (pid {pid}) did not become ready; see worker.log")
