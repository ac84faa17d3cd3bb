"""The run's watchers of the worker, started and stopped together: the monitor (OOM notices, exits,
the kernel log, the probe's file), the sampler, Celery's events, the worker's log. `evidence()`
freezes what they saw so far for `assemble()`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from oomlab.config.options import RunConfig
from oomlab.observe.detectors.celery_events import CeleryEventCapture
from oomlab.observe.detectors.worker_log import WorkerLog
from oomlab.observe.environment import describe
from oomlab.observe.evidence import Evidence, SamplerFigures
from oomlab.observe.executions import build_executions, sent_in_worker, task_names
from oomlab.observe.monitor import Monitor
from oomlab.observe.sampler import Sampler
from oomlab.probe.events import ProbeLine
from oomlab.record.schema import Environment, Execution, TaskRecord
from oomlab.worker.limits.base import CgroupBackend


class Observers:
    def __init__(self, config: RunConfig, group: CgroupBackend, run_dir: str, probe_path: str, log_path: str):
        self.config = config
        self.wall_offset = time.time() - time.monotonic()
        emulate = config.oom_scope == "group" and group.version == 1
        self.group_kill = (
            "oomlab, on the OOM notification (v1 has no memory.oom.group)"
            if emulate
            else "the kernel (memory.oom.group)"
            if config.oom_scope == "group"
            else None
        )
        self.monitor = Monitor(group, probe_path, emulate_group_kill=emulate)
        self.sampler = Sampler(group, run_dir, rss_hz=config.sample_hz, on_new_pid=self.monitor.watch_pid)
        self.worker_log = WorkerLog(log_path)
        self.events: CeleryEventCapture | None = None

    def start(self, app: Any, hostname: str, worker_pid: int) -> None:
        self.monitor.watch_pid(worker_pid)
        self.monitor.start()
        self.sampler.start()
        self.events = CeleryEventCapture(app, hostname, lambda wall: wall - self.wall_offset)
        self.events.start()

    def environment(self, before: Environment) -> Environment:
        """Where the run ran and which detectors it has, kept with what the run noted before."""
        found = describe(self.monitor.group.name)
        return dataclasses.replace(
            found,
            detectors={**self.monitor.detectors, "celery_events": True},
            cleaned_up_after_previous_runs=before.cleaned_up_after_previous_runs,
            cleanup_errors=before.cleanup_errors,
        )

    def watch_pid(self, pid: int) -> None:
        self.monitor.watch_pid(pid)

    def stop_steps(self) -> list[Callable[[], None]]:
        return [t.stop for t in (self.events, self.sampler, self.monitor) if t is not None]

    def evidence(
        self,
        tasks: list[TaskRecord] | None,
        observed: dict[str, TaskRecord],
        with_observed: bool = True,
        **run_facts: Any,
    ) -> Evidence:
        """Everything observed so far, with the run's own facts (main pids, states...). `tasks` are
        the replay's; every other task the worker sent or ran (a chord's parts, a callback, tasks the
        user's code sent in a pytest session) is added from the probe and kept in `observed`
        (`with_observed` False: a load run, which follows its tasks itself)."""
        sampler = self.sampler
        observations = self.monitor.snapshot()
        if with_observed:
            probe = observations.probe
            sent = {task.id for task in tasks or ()}
            extra = observed_tasks(observed, build_executions(probe), task_names(probe), sent_in_worker(probe), sent)
            tasks = [*(tasks or ()), *extra]
        return Evidence(
            config=self.config,
            observations=observations,
            tasks=tasks or [],
            pid_stats=sampler.snapshot(),
            celery_events=self.events.snapshot() if self.events else [],
            pool_noticed={pid: wall - self.wall_offset for pid, wall in self.worker_log.read().child_deaths.items()},
            sampler=SamplerFigures(
                max_usage=sampler.max_usage or None,
                max_sum_rss=sampler.max_sum_rss or None,
                usage_at_max_sum_rss=sampler.usage_at_max_sum_rss,
                cost=sampler.cost.as_dict(),
                kinds_at_max_usage=sampler.kinds_at_max_usage,
                kinds_max=dict(sampler.kinds_max),
                leaves=sampler.leaf_snapshot(),
            ),
            kmsg_clock=self.monitor.kmsg_clock,
            celery_events_error=self.events.error if self.events else None,
            **run_facts,
        )


def observed_tasks(
    known: dict[str, TaskRecord],
    executions: dict[str, list[Execution]],
    names: dict[str, str],
    sent: dict[str, ProbeLine] | None = None,
    skip: set[str] | frozenset[str] = frozenset(),
) -> list[TaskRecord]:
    """Tasks someone else sent (the worker itself, or a pytest session through the app), from the
    moment the worker sent one or the probe saw it start."""
    for task_id, record in (sent or {}).items():
        if task_id not in known and task_id not in skip:
            parent = record.get("parent_id") or ""
            # its sender ran in this worker: its prerun named it; else (another worker's task) its id
            sender = names.get(parent) or (f"task {parent[:8]}" if parent else "")
            known[task_id] = TaskRecord(
                id=task_id,
                name=record.get("name") or "?",
                label=f"sent by {sender}" if sender else "",
                args=[],
                sent_mono=record["t"],
                parent_id=record.get("parent_id"),
                root_id=record.get("root_id"),
                group_id=record.get("group_id"),
                sent_by="worker",
            )
    for task_id, runs in executions.items():
        if task_id not in known and task_id not in skip and runs:
            known[task_id] = TaskRecord(
                id=task_id, name=names.get(task_id, "?"), label="", args=[], sent_mono=runs[0].started_mono
            )
    return list(known.values())
