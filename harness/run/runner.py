"""One run, end to end: placement → broker → worker → replay → evidence → record, and cleanup
whatever happens.

Every resource is registered in the run's lease the moment it exists, so SIGINT/SIGTERM (handled
here) and SIGKILL (handled by the next run's sweep) both leave nothing behind.
"""

from __future__ import annotations

import os
import signal
import sys
from functools import partial

from oomlab.config.routing import task_routes
from oomlab.errors import Interrupted, OomlabError, ResultsUnwritable, WorkerStartFailed
from oomlab.observe.observers import Observers
from oomlab.record.schema import RunRecord, RunStatus
from oomlab.record.status import settle_status
from oomlab.record.stream import RunTasks
from oomlab.run.drive import check_plan_names, drive
from oomlab.run.poison import PoisonGuard
from oomlab.run.state import CHECKPOINT_SECONDS, RunState
from oomlab.run.teardown import run_steps, shutdown
from oomlab.run.worker_start import launch_spec, wait_until_ready
from oomlab.trust import RunDirectory, temp_dir
from oomlab.worker.broker_connection import check_given, connect
from oomlab.worker.leftovers import state_dir, sweep_stale
from oomlab.worker.result_cleanup import delete_run_results

__all__ = ["CHECKPOINT_SECONDS", "Run"]
FILES = {"probe": "probe.jsonl", "samples": "samples.csv", "group": "group.csv", "worker_log": "worker.log"}


class Run(RunState):
    """A run: RunState's steps in order, and cleanup whatever happens."""

    # --- the whole run ---------------------------------------------------------------------
    def execute(self) -> RunRecord:
        with self.signals:
            self._execute()
        if self.teardown_failure is not None:  # everything else went well and is cleaned up: exit 6
            raise self.teardown_failure
        return self.record

    def _execute(self) -> None:
        self.prepare()
        try:
            check_plan_names(self)  # a misspelt task name, before any worker starts
            self.start_worker()
            drive(self)
            self.record.status = self.unfinished_status or "complete"
        except Interrupted as stop:
            self._failed("interrupted", f"interrupted by {signal.Signals(stop.signum).name}")
            raise
        except WorkerStartFailed as failure:
            self._failed("worker_start_failed", failure.message)
            raise
        except OomlabError as error:
            self._failed("error", error.message)
            raise
        except BaseException as error:
            self._failed("error", f"{type(error).__name__}: {error}")
            raise
        finally:
            with self.signals.cleaning_up():
                self.close()

    def _failed(self, status: RunStatus, message: str) -> None:
        self.record.status, self.record.message = status, message

    def prepare(self) -> None:
        """The run directory, the lease, and the sweep of what earlier runs left behind."""
        # the monitor thread wakes on kernel events; a short GIL switch interval lets it run
        # within ~1 ms of waking instead of up to 5 ms (CPython's default)
        sys.setswitchinterval(0.0005)
        state_dir()  # refuses a state directory someone else could write before anything is made
        temp_dir()  # and a TMPDIR where another user could swap the worker's directories
        check_given(self.config)  # an unreachable broker or backend: exit 5 with no run directory made
        try:
            RunDirectory.create(self.run_dir)  # the results directory trusted, the run's made new
            self.run_dir_made = True
        except OSError as exc:
            raise ResultsUnwritable(f"cannot make the run directory {self.run_dir}: {exc.strerror}") from None
        self.record.files = dict(FILES)
        self.lease.save()
        self.record.environment.cleaned_up_after_previous_runs = sweep_stale(
            credentials=(self.config.broker, self.config.result_backend)
        )
        self.checkpoint()

    @property
    def forgets_results(self) -> bool:
        """The run's result keys are its own to delete: oomlab picked the broker's Redis as the backend
        (no --result-backend given) for a worker it started (oomlab.worker.result_cleanup)."""
        connection = self.connection
        return (
            self.owns_queue
            and connection is not None
            and not self.config.result_backend
            and connection.backend_url == connection.broker_url
            and connection.backend_url.startswith(("redis://", "rediss://", "redis+socket://", "unix://"))
        )

    def forget_results(self) -> None:
        assert self.connection is not None
        options = self.config.celery_conf.get("result_backend_transport_options") or {}
        prefix = options.get("global_keyprefix", "") if isinstance(options, dict) else ""
        ids = (task.id for task in RunTasks(self.run_dir, self.record))
        deleted = delete_run_results(self.connection.backend_url, ids, str(prefix or ""))
        self.record.environment.result_keys_deleted = deleted
        self.write_record()

    def start_worker(self) -> None:
        """The group, the broker and the worker, ready to take tasks (WorkerStartFailed otherwise)."""
        self._start()
        self.ready_mono = self.record.worker.ready_mono = wait_until_ready(self)

    def close(self) -> None:
        """Stop everything and write the final record; safe to call once, whatever happened before."""
        shutdown(self)
        try:
            self.finalize()
        except OSError:  # a full results disk: the final status still goes into run.json
            settle_status(os.path.join(self.run_dir, "run.json"), self.record.status, self.record.message)
            raise

    def _start(self) -> None:
        config, placement = self.config, self.placement
        placement.prepare()
        connection = self.connection = connect(config, self.run_dir, self.lease, may_embed=placement.owns_worker)
        if self.owns_queue:
            for queue in self.queues:
                self.lease.add_queue(connection.broker_url, queue)  # swept after a SIGKILL
        self.app = self.scenario.app
        routes = task_routes(self.default_queue, config.routes) if config.worker_class else None
        celery_conf = connection.worker_conf(
            self.scenario, config.celery_conf, self.default_queue, task_events=not config.load, routes=routes
        )
        self.task_queue = connection.point_client(self.app, celery_conf, self.queue, config.queue_arguments)
        self.record.worker = connection.describe(self.hostname, self.queue, celery_conf)
        worker = placement.launch(launch_spec(self, celery_conf))
        self.record.worker.pid = worker.pid
        group = placement.group
        assert group is not None, "a placement has a group once its worker runs"
        observers = self.observers = Observers(config, group, self.run_dir, placement.probe_path, placement.log_path)
        self.record.environment = observers.environment(self.record.environment)
        placement.describe_group(self.record.group)
        self.record.group.limit_bytes, self.record.group.oom_scope = config.memory_bytes, config.oom_scope
        self.record.group.group_kill = observers.group_kill
        placement.describe_worker(self.record.worker)
        if config.max_oom_redeliveries:
            self.poison_guard = PoisonGuard(self.app, config.max_oom_redeliveries)
            observers.monitor.on_named = self.poison_guard.named
        observers.start(self.app, self.hostname, worker.pid)
        self.each_hook("started")
        self.record.status = "running"
        self.checkpoint()

    def finalize(self) -> None:
        self.record.environment.cleanup_errors += self.placement.finish()
        self.checkpoint(final=True)
        if self.forgets_results:  # after the final states are in the record: they were read from those keys
            run_steps(self, [self.forget_results])
        if self.hooks:
            run_steps(self, [partial(hook.finished, self) for hook in self.hooks])
            self.write_record()
