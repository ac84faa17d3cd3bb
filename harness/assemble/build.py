"""Evidence → record, as one pure step: no clock, no file, no thread, so every record can be
rebuilt from saved evidence and the rules tested in milliseconds."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Collection

from oomlab.assemble.analysis import summarize, summarize_processes
from oomlab.assemble.attribution import KillContext, attribute_kills
from oomlab.assemble.findings import findings
from oomlab.assemble.outcomes import TreeContext, fill_task
from oomlab.assemble.truth import apply_truth_summary, mark_process_peaks
from oomlab.observe.evidence import Evidence
from oomlab.observe.executions import build_executions, child_exit_codes, pool_children, task_names
from oomlab.probe.events import CHILD_INIT, WORKER_READY
from oomlab.record.schema import Execution, KillRecord, ProcessRecord, RunRecord, Summary, TaskRecord


def assemble(evidence: Evidence, base: RunRecord) -> RunRecord:
    """`base` (what the run knows of itself: status, worker, group) with the tasks, processes, kills
    and summary that the evidence shows. Neither argument is changed."""
    obs = evidence.observations
    executions = build_executions(obs.probe)
    names = task_names(obs.probe)
    main_pid = evidence.main_pids[0] if evidence.main_pids else None
    main_pids = frozenset(evidence.main_pids)
    children = pool_children(obs.probe)
    context = KillContext(
        main_pids,
        evidence.ready_mono,
        executions,
        names,
        evidence.pid_stats,
        evidence.celery_events,
        evidence.pool_noticed,
        children,
    )
    kills = attribute_kills(obs, context)
    processes = _processes(evidence, kills, child_exit_codes(obs.probe), main_pid, main_pids)
    mark_process_peaks(processes, obs.probe, executions, obs.leaf_of_pid)
    poison = frozenset(p.task_id for p in base.poison)
    tree = TreeContext(
        evidence.config.pool, evidence.pid_stats, obs.leaf_of_pid, children, poison, evidence.sampler.leaves
    )
    tasks = [_task(task, evidence, executions, kills, tree) for task in evidence.tasks]
    # the sections this step writes into are copied; tasks, processes and kills are built anew, so
    # nothing of the (possibly large) previous record is copied at every checkpoint
    record = dataclasses.replace(
        base, worker=copy.copy(base.worker), environment=copy.copy(base.environment), group=copy.copy(base.group)
    )
    record.kills, record.processes, record.tasks = kills, processes, tasks
    record.celery_events = list(evidence.celery_events)
    record.worker.ready_rss_bytes = next(
        (r.get("rss") for r in obs.probe if r["ev"] == WORKER_READY and r["pid"] == main_pid), None
    )
    record.environment.kmsg_clock = evidence.kmsg_clock
    record.environment.celery_events_error = evidence.celery_events_error
    adjs = [adj for r in obs.probe if r["ev"] == CHILD_INIT and (adj := r.get("oom_score_adj")) is not None]
    record.environment.child_oom_score_adj = max(adjs, default=None)
    record.group.replaced_mono = list(obs.group_replaced)  # a restarted container's cgroup, made anew
    record.summary = _summary(evidence, record)
    record.summary.findings = findings(record)
    return record


def _task(
    task: TaskRecord,
    evidence: Evidence,
    executions: dict[str, list[Execution]],
    kills: list[KillRecord],
    tree: TreeContext,
) -> TaskRecord:
    filled = dataclasses.replace(task, state_history=list(task.state_history))
    state, exception = evidence.states.get(task.id, (None, None))
    runs = executions.get(task.id, [])
    if state in (None, "PENDING") and runs and runs[-1].state in ("SUCCESS", "FAILURE"):
        state = runs[-1].state  # no result stored (ignore_result): the state task_postrun saw
    fill_task(filled, state, exception, runs, kills, tree)
    return filled


def _processes(
    evidence: Evidence,
    kills: list[KillRecord],
    exit_codes: dict[int, int],
    main_pid: int | None,
    main_pids: Collection[int],
) -> list[ProcessRecord]:
    stats = evidence.pid_stats
    # VmHWM when the main process was last alive to ask; if it died first, the kernel's figure at
    # its kill or the sampled maximum can be higher, and each is a true lower bound
    sampled = stats[main_pid].max_rss if main_pid in stats else 0
    killed_at = [k.rss_bytes or 0 for k in kills if k.pid == main_pid]
    main_peak = max([evidence.main_vmhwm or 0, sampled, *killed_at]) or None
    return [
        ProcessRecord(
            pid=pid,
            role="main" if pid in main_pids else "child",
            first_seen_mono=s.first_seen,
            last_seen_mono=s.last_seen,
            command=s.command,
            exited_mono=evidence.observations.exits.get(pid),
            exit_code=evidence.main_exit_codes.get(pid) if pid in main_pids else exit_codes.get(pid),
            peak_rss_bytes=main_peak if pid == main_pid else None,
            max_rss_bytes=s.max_rss,
            max_pss_bytes=s.max_pss,
            max_uss_bytes=s.max_uss,
            last_rss_bytes=s.last_rss,
        )
        for pid, s in sorted(stats.items(), key=lambda item: item[1].first_seen)
    ]


def _summary(evidence: Evidence, record: RunRecord) -> Summary:
    config = evidence.config
    peak = evidence.group_peak if evidence.group_peak is not None else evidence.sampler.max_usage
    summary = summarize(record.tasks, record.kills, config.memory_bytes, peak)
    summarize_processes(record.processes, summary)
    summary.sampler = evidence.sampler.cost
    summary.sum_rss_peak_bytes = evidence.sampler.max_sum_rss or None
    summary.group_usage_at_sum_rss_peak_bytes = evidence.sampler.usage_at_max_sum_rss
    apply_truth_summary(summary, record, evidence.sampler.kinds_at_max_usage, evidence.sampler.kinds_max)
    return summary
