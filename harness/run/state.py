"""A run's state and what every step of it does to that state: the record assembled again from the
evidence, a checkpoint, the hooks called. The steps (worker_start, drive, restart, teardown, the load
driver) take a RunState; the runner (`Run`) is a RunState that sequences them, so no step imports it.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from oomlab.assemble.build import assemble
from oomlab.config.routing import class_queue
from oomlab.probe import procfs
from oomlab.record.schema import RunRecord, RunStatus, TaskRecord, write_json_atomic
from oomlab.run.poison import KillWatch, PoisonGuard, stop_poison
from oomlab.run.signals import RunSignals
from oomlab.worker.leftovers import Lease
from oomlab.worker.placement import Placement, open_placement

if TYPE_CHECKING:
    from kombu import Queue
    from oomlab.config.options import RunConfig
    from oomlab.config.scenario import Plan, RunContext, Scenario
    from oomlab.errors import ScenarioFailed
    from oomlab.observe.evidence import Evidence
    from oomlab.observe.observers import Observers
    from oomlab.run.hooks import RunHook
    from oomlab.run.replay import Following
    from oomlab.worker.broker_connection import BrokerConnection
    from oomlab.worker.limits.base import CgroupBackend

CHECKPOINT_SECONDS = 1.0


def new_run_id(scenario: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{scenario}-{secrets.token_hex(3)}"


class RunState:
    def __init__(self, scenario: Scenario, config: RunConfig, hooks: Sequence[RunHook] = (), share: Any | None = None):
        self.scenario, self.config, self.hooks = scenario, config, tuple(hooks)
        self.run_id = new_run_id(scenario.name)
        self.run_dir = os.path.abspath(os.path.join(config.results_dir, self.run_id))
        self.run_dir_made = False  # its path is printed only once it exists (a refused run made nothing)
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
        self.plan_calls: int | None = None  # the calls the scenario's plan itself made (before any repeat)
        self.own_plan: Plan | None = None  # the scenario's plan, made once before the worker starts
        self.signals = RunSignals()  # installed by execute(), cleanup included; hurried by a further signal
        self.teardown_failure: ScenarioFailed | None = None  # raised (exit 6) once cleanup is over
        self.main_vmhwm: int | None = None
        self.ready_mono: float | None = None
        self.group_peak: int | None = None
        self.evidence: Evidence | None = None
        self.worker_tmp: str | None = None  # the worker's TMPDIR (billiard's pymp-* dirs), removed at the end
        self.unfinished_status: RunStatus | None = None  # worker_lost | timed_out: the work stopped short
        self.kill_watch = KillWatch()  # a new OOM kill: the record at once, so a poison message stops soon
        self.poison_guard: PoisonGuard | None = None  # revokes a poison message as its last kill is named
        self.record = RunRecord(
            run_id=self.run_id, config=config, started_wall=time.time(), started_mono=time.monotonic()
        )

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

    def context(self) -> RunContext:
        return self.config.context(self.run_dir)

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
            states={**self.external_states, **self.replay.states} if self.replay else self.external_states,
            group_peak=self.group_peak,
            observed=self.observed,
            with_observed=not self.config.load,
        )
        self.evidence = evidence  # the last evidence assembled: kept for fixtures and debugging
        self.record = assemble(evidence, self.record)
        if stop_poison(self):  # their outcome and finding
            self.record = assemble(evidence, self.record)
        self.each_hook("collect")

    def each_hook(self, name: str) -> None:
        for hook in self.hooks:
            getattr(hook, name)(self)

    def checkpoint(self, *, final: bool = False) -> None:
        self.collect()
        self.record.ended_mono = time.monotonic()
        self.write_record(compact=not final)

    def write_record(self, *, compact: bool = False) -> None:
        """run.json; a checkpoint's is `compact` (written each second), the final one indented for reading."""
        write_json_atomic(os.path.join(self.run_dir, "run.json"), self.record.to_json(), compact=compact)


def read_main_vmhwm(run: RunState) -> None:
    """The first main process's VmHWM (never reset, so its lifetime peak), while it is alive to ask."""
    first = run.placement.workers[0] if run.placement.workers else None
    if first is not None and first.poll() is None:
        peak = procfs.status_fields(first.pid, ("VmHWM",)).get("VmHWM")
        if peak:
            run.main_vmhwm = max(run.main_vmhwm or 0, peak)
