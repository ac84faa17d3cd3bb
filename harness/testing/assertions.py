"""Assertions on what a real worker did, for tests: each waits for the task to settle, judges it on
exact figures (VmHWM, kernel kill records), and fails with the measured value against the limit,
the tasks with the highest peaks and their pids, and the run directory with the full record."""

from __future__ import annotations

import time
from typing import NoReturn

from oomlab.assemble.outcomes import FINAL_STATES
from oomlab.config.sizes import format_size, parse_size
from oomlab.errors import OomlabError
from oomlab.observe.profiling.text import failure_lines
from oomlab.record.digest import KILLED_OUTCOMES, TaskDigest
from oomlab.record.kinds import Moment, kind_bytes
from oomlab.record.schema import TaskRecord
from oomlab.record.stream import RunTasks, TaskLine
from oomlab.testing.session import WorkerSession


class OomlabAssertionError(AssertionError):
    pass


def _session(session: WorkerSession | None) -> WorkerSession:
    session = session or WorkerSession.current()
    if session is None:
        raise OomlabAssertionError("no oomlab worker is running: use the oomlab_worker fixture or a WorkerSession")
    return session


def _task_id(result_or_task_id) -> str:
    return getattr(result_or_task_id, "id", None) or str(result_or_task_id)


def _size(limit) -> int:
    return limit if isinstance(limit, int) else parse_size(str(limit).replace(" ", ""))


def tree_peak(task: TaskRecord) -> int | None:
    """The task's peak with every process it started: its RSS at the start plus its leaf's growth
    (the kernel's count), or the pool process's own VmHWM where that is higher, or where the task
    started no process (the leaf then also counts kernel memory RSS does not: page tables, slab)."""
    whole = None
    started_others = bool(task.descendants or task.killed_descendants)  # else VmHWM is the whole story
    if started_others and task.tree_peak_above_start_bytes is not None and task.start_rss_bytes is not None:
        whole = task.start_rss_bytes + task.tree_peak_above_start_bytes
    figures = [f for f in (task.peak_rss_bytes, whole) if f is not None]
    return max(figures) if figures else None


def describe_task(task: TaskRecord) -> str:
    peak = format_size(task.peak_rss_bytes) if task.peak_rss_bytes is not None else "?"
    how = "exact (VmHWM)" if task.peak_is_exact else (task.peak_note or "RSS at the OOM kill")
    killed = sum(1 for run in task.executions if run.killed)
    outcome = (
        task.outcome
        if not killed
        else "OOM-killed"
        if task.executions[-1].killed
        else f"OOM-killed {killed}x, then {task.outcome}"
    )
    tree = ""
    if task.tree_peak_above_start_bytes is not None:
        tree = f", its tree grew {format_size(task.tree_peak_above_start_bytes)}"
    killed_below = "".join(
        f", its process {k.pid} ({(k.command or '?')[:40]}) OOM-killed at {format_size(k.rss_bytes)}"
        for k in task.killed_descendants
    )
    return f"{task.name}[{task.id}] pid {task.pid}: peak {peak}, {how}, {outcome}{tree}{killed_below}"


def highest_peaks(tasks: list[TaskRecord], n: int = 3) -> str:
    ranked = sorted(
        (t for t in tasks if t.peak_rss_bytes is not None), key=lambda t: t.peak_rss_bytes or 0, reverse=True
    )
    return "\n".join(f"  {describe_task(t)}" for t in ranked[:n]) or "  (no task measured)"


def _fail(headline: str, session: WorkerSession, tasks: list[TaskRecord] | None = None) -> NoReturn:
    tasks = tasks if tasks is not None else session.tasks()
    raise OomlabAssertionError(
        f"{headline}\nhighest peaks in this worker:\n{highest_peaks(tasks)}\nrun directory: {session.run_dir}"
    )


def _settled_task(result_or_task_id, session: WorkerSession, timeout: float) -> TaskRecord:
    task_id = _task_id(result_or_task_id)
    task = session.wait(task_id, timeout)
    lost = session.worker_lost()
    last = task.executions[-1] if task is not None and task.executions else None
    # killed is an end too: a kill the kernel followed by another of the main process (the group still
    # at its limit while the first victim's memory is freed) leaves the task OOM-killed, as it was
    if lost and (last is None or (last.finished_mono is None and not last.killed)):
        _fail(f"task {task_id} did not finish: {lost}", session)
    if task is None:
        unknown = session.unregistered_tasks()
        hint = (
            f"the worker does not know the task {', '.join(unknown)}: define it in the app's module or one the app "
            f"imports (include=...)"
            if unknown
            else "was it sent through the worker's app, to its queue?"
        )
        _fail(f"task {task_id} never started in the oomlab worker within {timeout:g} s ({hint})", session)
    return task


def assert_peak_rss_below(
    result_or_task_id, limit, *, session: WorkerSession | None = None, timeout: float = 60.0
) -> TaskRecord:
    """The task's exact peak RSS (VmHWM over its run, reset when it started; with every process it
    started, from its leaf memory cgroup) is below `limit` ("256 MiB", "1GiB" or bytes). A task
    killed by the OOM killer, or whose subprocess was, fails this too."""
    session = _session(session)
    task = _settled_task(result_or_task_id, session, timeout)
    limit_bytes = _size(limit)
    if task.peak_rss_bytes is None:
        _fail(f"task {task.name}[{task.id}] has no peak measurement (outcome {task.outcome})", session)
    failing = (task.peak_rss_bytes or 0) >= limit_bytes or any(r.killed for r in task.executions)
    if session.config.profile and failing:
        task = _with_profile(task, session)  # failing: its sites belong in the message
    if any(run.killed for run in task.executions):
        _fail(
            f"task {task.name}[{task.id}] was OOM-killed at {format_size(task.peak_rss_bytes)} RSS in pid {task.pid}, "
            f"so it never finished below {format_size(limit_bytes)}"
            + (f"\n{failure_lines([task])}" if task.profile else ""),
            session,
        )
    if task.killed_descendants:
        _fail(f"a process started by the task was OOM-killed: {describe_task(task)}", session)
    peak = tree_peak(task) or task.peak_rss_bytes or 0
    if peak >= limit_bytes:
        what = "VmHWM, exact" if peak == task.peak_rss_bytes else "start RSS + its tree's growth, kernel-counted"
        _fail(
            f"task {task.name}[{task.id}] peaked at {format_size(peak)} ({what}) in pid {task.pid}: "
            f"{format_size(peak - limit_bytes)} over the {format_size(limit_bytes)} limit"
            + (f"\n{failure_lines([task])}" if task.profile else ""),
            session,
        )
    return task


def _with_profile(task: TaskRecord, session: WorkerSession) -> TaskRecord:
    from oomlab.observe.profiling import wait_for_profiles

    wait_for_profiles(session)
    return next((t for t in session.tasks() if t.id == task.id), task)


def assert_memory_kind_below(
    result_or_task_id,
    limit,
    *,
    kind: str = "anon",
    at: Moment = "end",
    session: WorkerSession | None = None,
    timeout: float = 60.0,
) -> TaskRecord:
    """The task's `kind` memory (anon, file or shmem) is below `limit` at its end (`at="end"`: its
    leaf's memory.stat, every process it started included, else its pool process's) or when its
    process was OOM-killed (`at="at_kill"`: the kernel's split). Not a per-kind peak: the kernel keeps
    none, so memory freed before the task ended is not in it (docs/truth.md)."""
    session = _session(session)
    task = _settled_task(result_or_task_id, session, timeout)
    try:
        held = kind_bytes(task.memory_kinds, kind, at)
    except ValueError as error:
        raise OomlabAssertionError(str(error)) from None
    limit_bytes = _size(limit)
    if held is None:
        _fail(f"task {task.name}[{task.id}] has no {kind} figure {at} (outcome {task.outcome})", session)
    elif held >= limit_bytes:
        _fail(
            f"task {task.name}[{task.id}] held {format_size(held)} of {kind} memory {at.replace('_', ' ')} "
            f"(kernel-counted): {format_size(held - limit_bytes)} over the {format_size(limit_bytes)} limit",
            session,
        )
    return task


def assert_no_oom(*, session: WorkerSession | None = None) -> None:
    """No process of the worker has been OOM-killed so far."""
    session = _session(session)
    session.settle()
    kills = session.kills()
    if kills:
        lines = "\n".join(
            f"  pid {k.pid} ({k.role}{', ' + (k.command or '?')[:40] if k.role == 'descendant' else ''}) "
            f"running {k.task_name or '-'}[{k.task_id or '-'}] at "
            f"{format_size(k.rss_bytes)} RSS"
            for k in kills
        )
        _fail(f"{len(kills)} OOM kill(s) in a worker limited to {format_size(session.limit_bytes)}:\n{lines}", session)


def assert_oom_killed(result_or_task_id, *, session: WorkerSession | None = None, timeout: float = 60.0) -> TaskRecord:
    """The kernel OOM-killed the process running this task, or a process the task started, at least once."""
    session = _session(session)
    task = _settled_task(result_or_task_id, session, timeout)
    if not any(run.killed for run in task.executions) and not task.killed_descendants:
        _fail(
            f"task {task.name}[{task.id}] was not OOM-killed: it {task.outcome} with a peak of "
            f"{format_size(task.peak_rss_bytes)} under a {format_size(session.limit_bytes)} limit",
            session,
        )
    return task


def assert_requeued(
    result_or_task_id, times: int | None = None, *, session: WorkerSession | None = None, timeout: float = 60.0
) -> TaskRecord:
    """The task ran again after being killed: `times` redeliveries exactly, or at least one."""
    session = _session(session)
    deadline = time.monotonic() + timeout
    while True:  # a redelivery follows the kill after Celery notices it (up to seconds later)
        task = _settled_task(result_or_task_id, session, max(0.1, deadline - time.monotonic()))
        again = max(0, len(task.executions) - 1)
        last = task.executions[-1]
        enough = times is not None and again >= times and last.finished_mono is not None and not last.killed
        if task.state in FINAL_STATES or enough or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    killed = sum(1 for run in task.executions if run.killed)
    if (times is None and again == 0) or (times is not None and again != times) or (again and not killed):
        expected = "at least once" if times is None else f"{times} time(s)"
        _fail(
            f"task {task.name}[{task.id}] was requeued {again} time(s) after {killed} OOM kill(s), "
            f"expected {expected} (outcome {task.outcome})",
            session,
        )
    return task


def _describe_line(task: TaskLine) -> str:
    if task.outcome in KILLED_OUTCOMES:
        return f"{task.name}[{task.id}] pid {task.pid}: OOM-killed at {format_size(task.peak_rss_bytes)} RSS"
    return (
        f"{task.name}[{task.id}] pid {task.pid}: peak {format_size(task.peak_rss_bytes)}, exact (VmHWM), {task.outcome}"
    )


def assert_run_peak_rss_below(run_dir: str, limit, *, name: str | None = None) -> TaskDigest:
    """Every task of a finished run (`name`'s, or all) peaked below `limit` ("256 MiB", "1GiB" or
    bytes), exact VmHWM per task. Made for load runs (`oomlab run ... --rate`): their tasks are read
    from tasks.jsonl one line at a time, so a million-task run is judged in fixed memory. A task
    OOM-killed fails it, and so does a line of the stream that is not a task (the run's figures would
    leave it out). Returns what the tasks add up to (per name: outcomes, exact peaks)."""
    limit_bytes = _size(limit)
    try:
        tasks = RunTasks(run_dir)
    except OomlabError as error:
        raise OomlabAssertionError(error.message) from None
    digest = TaskDigest.of(task for task in tasks if name is None or task.name == name)
    which = f"task(s) named {name}" if name else "task(s)"
    if not digest.tasks:
        raise OomlabAssertionError(f"run {run_dir} has no {which}")
    over = sum(
        count for held in digest.by_name.values() for value, count in held.peaks.counts.items() if value >= limit_bytes
    )
    problems = []
    if over:
        highest = max(held.peaks.max or 0 for held in digest.by_name.values())
        problems.append(
            f"{over} of {digest.tasks} {which} peaked at or above {format_size(limit_bytes)}; the highest: "
            f"{format_size(highest)} ({format_size(highest - limit_bytes)} over)"
        )
    if digest.killed_count:
        problems.append(f"{digest.killed_count} of {digest.tasks} {which} were OOM-killed")
    if tasks.check.malformed:
        problems.append(tasks.check.problem() or "")
    if problems:
        shown = [*digest.largest[:3], *digest.killed[:3]]
        lines = "\n".join(f"  {_describe_line(task)}" for task in shown) or "  (no task measured)"
        raise OomlabAssertionError(
            "\n".join([*problems, f"highest peaks and kills:\n{lines}", f"run directory: {run_dir}"])
        )
    return digest
