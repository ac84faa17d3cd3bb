"""One run, end to end: placement → broker → worker → replay → evidence → record, and cleanup
whatever happens.

Every resource is registered in the run's lease the moment it exists, so SIGINT/SIGTERM (handled
here) and SIGKILL (handled by the next run's sweep) both leave nothing behind.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from oomlab.assemble.build import assemble
from oomlab.config.routing import class_queue, task_routes
from oomlab.errors import Interrupted, OomlabError, ResultsUnwritable, ScenarioFailed, WorkerStartFailed
from oomlab.observe.observers import Observers
from oomlab.record.schema import RunRecord, RunStatus, TaskRecord, write_json_atomic
from oomlab.record.status import settle_status
from oomlab.run.drive import CHECKPOINT_SECONDS, drive
from oomlab.run.signals import RunSignals
from oomlab.run.teardown import read_main_vmhwm, run_steps, shutdown
from oomlab.run.worker_start import launch_spec, wait_until_ready
from oomlab.worker.broker_connection import BrokerConnection, connect
from oomlab.worker.leftovers import Lease, state_dir, sweep_stale
from oomlab.worker.placement import Placement, open_placement

if TYPE_CHECKING:
    from kombu import Queue
    from oomlab.config.options import RunConfig
    from oomlab.config.scenario import RunContext, Scenario
    from oomlab.observe.evidence import Evidence
    from oomlab.run.hooks import RunHook
    from oomlab.run.replay import Following
    from oomlab.worker.limits.base import CgroupBackend

__all__ = ["CHECKPOINT_SECONDS", "Run"]
FILES = {"probe": "probe.jsonl", "samples": "samples.csv", "group": "group.csv", "worker_log": "worker.log"}


def new_run_id(scenario: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{scenario}-{secrets.token_hex(3)}"


class Run:
    def __init__(self, scenario: Scenario, config: RunConfig, hooks: Sequence[RunHook] = (), share: Any | None = None):
        self.scenario, self.config, self.hooks = scenario, config, tuple(hooks)
        self.run_id = new_run_id(scenario.name)
        self.run_dir = os.path.abspath(os.path.join(config.results_dir, self.run_id))
        self.lease = Lease.for_this_process(self.run_id, self.run_dir)
        self.placement: Placement = open_placement(config, self.run_id, self.run_dir, self.lease, share)
        # the run's default queue; a split run's worker consumes only its class's queue (oomlab.config.routing)
        self.default_queue = self.placement.queue()
        self.queue = class_queue(self.default_queue, config.worker_class)
        self.hostname = self.placement.hostname(socket.gethostname())
        self.connection: BrokerConnection | None = None
        self.observers: Observers | None = None
        self.app: Any = None
        self.task_queue: Queue | None = None
        self.replay: Following | None = None  # a plan's Replay or a load driver
        # tasks sent by someone else (a pytest session through the app): what the probe saw, and
        # the states the session polled from the result backend
        self.observed: dict[str, TaskRecord] = {}
        self.external_states: dict[str, tuple[str | None, str | None]] = {}
        self.planned = False
        self.signals = RunSignals()  # installed by execute(), cleanup included; hurried by a further signal
        self.teardown_failure: ScenarioFailed | None = None  # raised (exit 6) once cleanup is over
        self.main_vmhwm: int | None = None
        self.ready_mono: float | None = None
        self.group_peak: int | None = None
        self.evidence: Evidence | None = None
        self.worker_tmp: str | None = None  # the worker's TMPDIR (billiard's pymp-* dirs), removed at the end
        self.unfinished_status: RunStatus | None = None  # worker_lost | timed_out: the work stopped short
        self.record = RunRecord(
            run_id=self.run_id, config=config, started_wall=time.time(), started_mono=time.monotonic()
        )

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
        try:
            os.makedirs(self.run_dir)
        except OSError as exc:
            raise ResultsUnwritable(f"cannot make the run directory {self.run_dir}: {exc.strerror}") from None
        self.record.files = dict(FILES)
        self.lease.save()
        self.record.environment.cleaned_up_after_previous_runs = sweep_stale(
            credentials=(self.config.broker, self.config.result_backend)
        )
        self.checkpoint()

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

    @property
    def queues(self) -> list[str]:
        """The queues this run uses: its own, and in a split run also the default one a misrouted task lands in."""
        return list(dict.fromkeys((self.queue, self.default_queue)))

    @property
    def send_queue(self) -> Queue | None:
        """Where a task is sent: the run's queue, or in a split run nowhere in particular (task_routes decide)."""
        return None if self.config.worker_class else self.task_queue

    @property
    def group(self) -> CgroupBackend | None:
        """The worker's memory cgroup (what hooks read of the placement)."""
        return self.placement.group

    @property
    def owns_queue(self) -> bool:
        """The run's own queue on a service broker: leased, and deleted at the end."""
        return self.placement.owns_worker and self.connection is not None and self.connection.on_service

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
        observers.start(self.app, self.hostname, worker.pid)
        self.each_hook("started")
        self.record.status = "running"
        self.checkpoint()

    def context(self) -> RunContext:
        return self.scenario.context(self.config, self.run_dir)

    # --- the record ------------------------------------------------------------------------
    def collect(self) -> None:
        """The record again, from everything observed so far."""
        if self.observers is None:
            return
        read_main_vmhwm(self)
        workers = self.placement.workers
        evidence = self.observers.evidence(
            main_pids=[w.pid for w in workers],
            main_exit_codes={w.pid: w.returncode for w in workers},
            main_vmhwm=self.main_vmhwm,
            ready_mono=self.ready_mono,
            tasks=self.replay.tasks if self.replay else None,
            states=self.replay.states if self.replay else self.external_states,
            group_peak=self.group_peak,
            observed=self.observed,
        )
        self.evidence = evidence  # the last evidence assembled: kept for fixtures and debugging
        self.record = assemble(evidence, self.record)
        self.each_hook("collect")

    def each_hook(self, name: str) -> None:
        for hook in self.hooks:
            getattr(hook, name)(self)

    def checkpoint(self) -> None:
        self.collect()
        self.record.ended_mono = time.monotonic()
        self.write_record()

    def write_record(self) -> None:
        write_json_atomic(os.path.join(self.run_dir, "run.json"), self.record.to_json())

    def finalize(self) -> None:
        self.record.environment.cleanup_errors += self.placement.finish()
        self.checkpoint()
        if self.hooks:
            run_steps(self, [partial(hook.finished, self) for hook in self.hooks])
            self.write_record()
