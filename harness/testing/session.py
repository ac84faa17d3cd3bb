"""A real worker of the user's own Celery app under a memory limit, driven by the user's code (a
pytest session) instead of a scenario plan: start it, send tasks through the app as usual, ask for
each task's exact peak and every OOM kill, stop it. The record is the same run.json as `oomlab run`.
"""

from __future__ import annotations

import sys
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any

from oomlab.assemble.outcomes import FINAL_STATES
from oomlab.assemble.truth import worker_lost_cause
from oomlab.config.options import OomScope, Placement, RunOptions, resolve
from oomlab.config.scenario import Scenario
from oomlab.errors import BadInput
from oomlab.observe.observers import Observers
from oomlab.record.schema import KillRecord, TaskRecord
from oomlab.report.hooks import standard_hooks
from oomlab.run.replay import fetch_states
from oomlab.run.restart import restart_worker
from oomlab.run.runner import CHECKPOINT_SECONDS, Run
from oomlab.run.worker_start import wait_until_ready_again
from oomlab.worker import client_app


def app_reference(app) -> str:
    """ "module:attribute" for a Celery app given as that string or as the object itself (found in
    the module that holds it, so the worker process can import the same app)."""
    if isinstance(app, str):
        return app
    for name, module in list(sys.modules.items()):
        for attribute, value in list(vars(module).items()) if module else ():
            if value is app and name != "__main__":
                return f"{name}:{attribute}"
    raise BadInput(f"cannot find a module that holds the Celery app {app!r}; give it as 'module:attribute'")


@dataclass
class WorkerOptions:
    app: Any
    memory: str = "512MiB"
    concurrency: int = 1
    pool: str = "prefork"
    broker: str | None = None
    result_backend: str | None = None
    oom_scope: OomScope = "process"
    results_dir: str = "results"
    start_timeout: float = 60.0
    placement: Placement = "cgroup"  # cgroup | docker: a container started through testcontainers
    backend: str | None = None  # deprecated: result_backend
    limits: str | None = None  # deprecated: placement
    profile: str | None = None  # memray on these tasks ("NAME,NAME" or "all"); None: none
    max_oom_redeliveries: int = 3  # a task id OOM-killed this many times is revoked (poison); 0: never

    def __post_init__(self) -> None:
        if self.backend is not None:
            warnings.warn("WorkerOptions(backend=) is now result_backend=", DeprecationWarning, stacklevel=3)
            self.result_backend = self.result_backend or self.backend
        if self.limits is not None:
            warnings.warn("WorkerOptions(limits=) is now placement=", DeprecationWarning, stacklevel=3)
            if self.limits not in ("cgroup", "docker"):
                raise BadInput(f"oomlab_placement must be cgroup or docker, not {self.limits!r}")
            self.placement = self.limits  # type: ignore[assignment]

    def run_options(self) -> RunOptions:
        if self.placement not in ("cgroup", "docker"):
            raise BadInput(f"oomlab_placement must be cgroup or docker, not {self.placement!r}")
        return RunOptions(
            memory=self.memory,
            concurrency=self.concurrency,
            pool=self.pool,
            broker=self.broker,
            result_backend=self.result_backend,
            oom_scope=self.oom_scope,
            results_dir=self.results_dir,
            start_timeout=self.start_timeout,
            celery={"task_routes": {}},  # every task to this worker
            placement=self.placement,
            container_starter="testcontainers" if self.placement == "docker" else "sdk",
            profile=self.profile,
            max_oom_redeliveries=self.max_oom_redeliveries,
        )


class WorkerSession:
    """Use as a context manager; while it runs, it is the worker the assertions ask by default."""

    _running: list[WorkerSession] = []

    @classmethod
    def current(cls) -> WorkerSession | None:
        return cls._running[-1] if cls._running else None

    def __init__(self, options: WorkerOptions):
        self.options = options
        scenario = Scenario.for_app(app_reference(options.app))
        self.config = resolve(scenario, options.run_options())
        self.run = Run(scenario, self.config, hooks=standard_hooks())
        self._previous_conf: dict = {}
        self._last_checkpoint = 0.0
        # the user's tests wait in their own way (AsyncResult.get()): a thread of ours watches for kills,
        # so a poison message is revoked whatever they do; the lock keeps it and refresh() apart
        self._lock = threading.RLock()
        self._watching = threading.Event()
        self._watcher: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> WorkerSession:
        app = self.run.scenario.app
        self._previous_conf = {
            key: app.conf.get(key)
            for key in ("broker_url", "result_backend", "task_default_queue", "task_routes", "task_queues")
        }
        self.run.prepare()
        try:
            self.run.start_worker()
            self.run.record.status = "running"
            WorkerSession._running.append(self)
            self._watching.set()
            self._watcher = threading.Thread(target=self._watch_kills, name="oomlab-kill-watch", daemon=True)
            self._watcher.start()
        except BaseException as error:
            self.run.record.status = "worker_start_failed"
            self.run.record.message = getattr(error, "message", str(error))
            self.stop()
            raise
        return self

    def _watch_kills(self) -> None:
        while self._watching.is_set():
            try:
                with self._lock:
                    self.run.kill_watch.check(self.run)
            except Exception as exc:  # the record says why; the user's tests go on
                self.run.record.environment.cleanup_errors.append(f"kill watch: {type(exc).__name__}: {exc}")
                return
            time.sleep(0.05)

    def stop(self) -> None:
        self._watching.clear()
        if self._watcher is not None:
            self._watcher.join()
            self._watcher = None
        if self in WorkerSession._running:
            WorkerSession._running.remove(self)
        if self.run.record.status == "running":
            # the final state of every task the probe saw, read while the backend is up: a session's tasks
            # are awaited by the user's tests, not by oomlab, so a task nothing asked about would read stuck
            try:
                self._observers().monitor.sync()  # the probe's last records first: the task that just ended
                self.refresh()
            except Exception as exc:  # the record says why its states may be missing; closing goes on
                self.run.record.environment.cleanup_errors.append(f"final task states: {type(exc).__name__}: {exc}")
            self.run.record.status = "complete"
        self.run.close()
        app = self.run.scenario.app
        client_app.detach(app)
        app.conf.update(self._previous_conf)  # the user's app goes back to its own broker

    def __enter__(self) -> WorkerSession:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    @property
    def app(self):
        return self.run.scenario.app

    @property
    def run_dir(self) -> str:
        return self.run.run_dir

    @property
    def limit_bytes(self) -> int:
        return self.config.memory_bytes

    # --- what the worker did -------------------------------------------------------------------
    def refresh(self) -> None:
        """Poll the result backend for every task the probe has seen, then rebuild the record."""
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        self.run.collect()
        asking = [
            task_id
            for task_id in self.run.observed
            if self.run.external_states.get(task_id, ("PENDING",))[0] not in FINAL_STATES
        ]
        self.run.external_states.update(fetch_states(self.app, asking))
        # a state read just now may be newer than the probe records collected above (a redelivery that
        # started and finished in between): take the probe again once the monitor has caught up
        self._observers().monitor.sync()
        now = time.monotonic()
        if now - self._last_checkpoint >= CHECKPOINT_SECONDS:  # the record on disk, as a run keeps it
            self.run.checkpoint()
            self._last_checkpoint = now
        else:
            self.run.collect()

    def tasks(self) -> list[TaskRecord]:
        self.refresh()
        return list(self.run.record.tasks)

    def kills(self) -> list[KillRecord]:
        self.refresh()
        return list(self.run.record.kills)

    def worker_lost(self) -> str | None:
        """Why the worker's main process is gone (None while it runs): its exit code and Celery's
        last word (a task's MemoryError ends the prefork worker)."""
        workers = self.run.placement.workers
        worker = workers[-1] if workers else None
        if worker is None or worker.poll() is None:
            return None
        cause = worker_lost_cause(self.run.placement.log_path)
        return f"the worker's main process exited with code {worker.returncode}" + (f": {cause}" if cause else "")

    def restart_worker(self) -> None:
        """A fresh worker in the same group and run, for the tests that follow one that lost it."""
        restart_worker(self.run, time.monotonic())
        wait_until_ready_again(self.run, self.run.placement.worker.pid)

    def unregistered_tasks(self) -> list[str]:
        """Task names the worker received but does not know (Celery logs and drops them)."""
        return sorted(self._observers().worker_log.read().unregistered)

    def _observers(self) -> Observers:
        if self.run.observers is None:
            raise RuntimeError("the worker session is not started: use it as a context manager")
        return self.run.observers

    def task_ids(self) -> set[str]:
        self.run.collect()
        return set(self.run.observed)

    def wait(self, task_id: str, timeout: float = 60.0) -> TaskRecord | None:
        """The task's record once it is final (a state in the backend, or killed with nothing running
        it); None if the worker never started it within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            self.refresh()
            task = next((t for t in self.run.record.tasks if t.id == task_id), None)
            if task is not None and _settled(task):
                time.sleep(0.05)  # the kernel line and exit of a kill arrive a few ms apart
                self.refresh()
                task = next(t for t in self.run.record.tasks if t.id == task_id)
                if _settled(task):  # not when a redelivery started in those 50 ms: wait for it too
                    return task
            if time.monotonic() > deadline or self.worker_lost() or self._dropped_as_unknown(task_id):
                return task
            time.sleep(0.05)

    def _dropped_as_unknown(self, task_id: str) -> bool:
        """The worker received the task and dropped it, its name unknown (a typo): nothing to wait for."""
        return task_id in self._observers().worker_log.read().unregistered_ids

    def settle(self, timeout: float = 30.0) -> list[TaskRecord]:
        """Wait until no task the worker started is still running; every task's record."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.refresh()
            if all(_settled(t) for t in self.run.record.tasks):
                break
            time.sleep(0.05)
        return list(self.run.record.tasks)


def _settled(task: TaskRecord) -> bool:
    last = task.executions[-1] if task.executions else None
    finished = last is not None and (last.finished_mono is not None or last.killed)
    return finished and (task.state in FINAL_STATES or (last is not None and last.killed))
