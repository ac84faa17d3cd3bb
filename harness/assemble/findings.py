"""Plain sentences that name the mechanism a run's figures show, each from kernel or probe facts
in the record (never a guess): what recycling could not prevent, what tracemalloc could not see,
where the main process grew."""

from __future__ import annotations

from oomlab.assemble.analysis import EX_RECYCLE
from oomlab.config.durations import format_seconds
from oomlab.config.sizes import format_size
from oomlab.record.redact import safe_url
from oomlab.record.schema import Execution, KillRecord, RunRecord, TaskRecord


def _recycle_reason(runs: list[Execution], limit_kib: int | None, max_tasks: int | None) -> str:
    """Which setting replaced a child, from its own last task: billiard's memory check compares
    ru_maxrss with worker_max_memory_per_child; the task count, with worker_max_tasks_per_child.
    billiard exits 155 for these two alone, so with one of them set (a load run records no task
    list to check against) that one is the reason; with both and no task to tell, either."""
    last = max(runs, key=lambda run: run.started_mono) if runs else None
    if limit_kib and last is not None and (last.ru_maxrss_bytes or 0) > limit_kib * 1024:
        return "memory"
    if max_tasks and len(runs) >= max_tasks:
        return "tasks"
    if bool(limit_kib) != bool(max_tasks):
        return "memory" if limit_kib else "tasks"
    return "either" if limit_kib else "other"


def recycling(record: RunRecord) -> list[str]:
    conf = record.worker.celery_conf
    limit_kib, max_tasks = conf.get("worker_max_memory_per_child"), conf.get("worker_max_tasks_per_child")
    found = []
    runs_by_pid: dict[int, list[Execution]] = {}
    for one in record.tasks:
        for run in one.executions:
            runs_by_pid.setdefault(run.pid, []).append(run)
    recycled = [p.pid for p in record.processes if p.role == "child" and p.exit_code == EX_RECYCLE]
    reasons = [_recycle_reason(runs_by_pid.get(pid, []), limit_kib, max_tasks) for pid in recycled]
    if reasons.count("memory"):
        found.append(
            f"{reasons.count('memory')} pool children were recycled (exit code {EX_RECYCLE}) after a task left "
            f"their ru_maxrss above worker_max_memory_per_child ({format_size((limit_kib or 0) * 1024)})"
        )
    if reasons.count("tasks"):
        found.append(
            f"{reasons.count('tasks')} pool children were recycled (exit code {EX_RECYCLE}) after "
            f"worker_max_tasks_per_child={max_tasks} tasks"
        )
    if reasons.count("either"):
        found.append(
            f"{reasons.count('either')} pool children were recycled (exit code {EX_RECYCLE}) by "
            f"worker_max_tasks_per_child={max_tasks} or worker_max_memory_per_child "
            f"({format_size((limit_kib or 0) * 1024)}); the record does not show which"
        )
    if reasons.count("other"):
        found.append(
            f"{reasons.count('other')} pool children exited with code {EX_RECYCLE} (recycled) for a reason "
            f"the record does not show"
        )
    if not limit_kib:
        return found
    by_id = {t.id: t for t in record.tasks}
    for kill in record.kills:
        killed = _killed_execution(by_id.get(kill.task_id or ""), kill)
        if killed is None:
            continue
        start = killed.start_rss_bytes
        found.append(
            f"{kill.task_name} was killed mid-task at {format_size(kill.rss_bytes)} although "
            f"worker_max_memory_per_child is {format_size(limit_kib * 1024)}: the child started the task at "
            f"{format_size(start)}, and Celery checks the limit only after a task returns"
        )
    return found


def untraced(record: RunRecord) -> list[str]:
    pairs = [
        (t.traced_peak_bytes, t.peak_above_start_bytes)
        for t in record.tasks
        if t.traced_peak_bytes is not None and t.peak_is_exact and t.peak_above_start_bytes
    ]
    if not pairs:
        return []
    traced, real = max(pairs, key=lambda pair: pair[1])
    share = traced / real if real else 0
    return [
        f"the largest task grew RSS by {format_size(real)} while tracemalloc saw {format_size(traced)} "
        f"({share:.0%}); the rest was allocated outside Python's allocator, where tracemalloc and gc cannot see it"
    ]


def main_process(record: RunRecord) -> list[str]:
    """The main process should stay near its size when ready; growth there is messages in flight."""
    if record.summary.peak_scope.startswith("process"):
        return []  # the tasks themselves run in it (solo, threads, gevent, eventlet): see shared_process
    peak, ready = record.summary.main_peak_rss_bytes, record.worker.ready_rss_bytes
    if not peak or not ready or peak - ready < max(32 * 1024 * 1024, ready // 2):
        return []
    return [
        f"the worker's main process grew from {format_size(ready)} when ready to {format_size(peak)}: every "
        f"message body passes through it, and it holds up to concurrency × worker_prefetch_multiplier "
        f"prefetched messages at once"
    ]


def _killed_execution(task: TaskRecord | None, kill: KillRecord) -> Execution | None:
    """The execution a kill hit: the last one in the killed process that started before the kill. A
    redelivered task's last execution is a later delivery, in another process, after the kill."""
    if task is None:
        return None
    hit = [run for run in task.executions if run.pid == kill.pid and run.started_mono <= kill.kernel_time_mono]
    return hit[-1] if hit else None


def slow_growth(record: RunRecord) -> list[str]:
    """A task killed seconds into its run, having grown all along: memory that accumulates."""
    tasks = {t.id: t for t in record.tasks}
    found = []
    for kill in record.kills:
        run = _killed_execution(tasks.get(kill.task_id or ""), kill)
        if run is None or run.start_rss_bytes is None or not kill.rss_bytes:
            continue
        elapsed = kill.kernel_time_mono - run.started_mono
        if elapsed >= 2.0:
            rate = (kill.rss_bytes - run.start_rss_bytes) / elapsed
            found.append(
                f"{kill.task_name} was killed {format_seconds(elapsed)} into its run, having grown by "
                f"{format_size(rate)}/s on average: memory accumulated over the task's life"
            )
    return found


DAEMONIC = "daemonic processes are not allowed to have children"


AFTER_A_CHILD_S = 2.0  # a main process killed this soon after a pool child: the kill that freed too late


def _after_a_child(record: RunRecord, main_kill: KillRecord) -> str:
    """A main process killed right after a pool child: the next allocation came before the victim's
    memory was freed, and a fresh child, its libraries not yet touched, held less than the main."""
    before = [
        k
        for k in record.kills
        if k.role == "child" and 0 <= main_kill.kernel_time_mono - k.kernel_time_mono <= AFTER_A_CHILD_S
    ]
    if not before:
        return ""
    child = before[-1]
    gap = format_seconds(main_kill.kernel_time_mono - child.kernel_time_mono)
    return (
        f", {gap} after it killed pool child {child.pid} at {format_size(child.rss_bytes)}. What helps: a "
        f"worker_process_init receiver that raises each pool child's /proc/self/oom_score_adj (e.g. to 300; "
        f"raising needs no privilege), so the kernel takes a child before the main process"
    )


def worker_lost(record: RunRecord) -> list[str]:
    """A run that ended with its worker gone or its time up did not do its work: say why."""
    never = record.summary.outcomes.get("never_started", 0)
    if record.status == "timed_out":
        return [f"{record.message}: the run is not complete; raise --timeout or look at the slowest task"]
    if record.status != "worker_lost":
        return []
    cause = record.worker.lost_cause
    found = (
        f"the worker's main process exited mid-run (exit code {record.worker.exit_code}), {never} task(s) never started"
    )
    if cause and "MemoryError" in cause:
        return [
            f"{found}: {cause}. A MemoryError raised in a task ends Celery's prefork worker (the pool passes it to "
            f"the main process, which treats it as unrecoverable); it is not an OOM kill: catch MemoryError in the "
            f"task, and bound memory with a cgroup limit rather than RLIMIT_AS"
        ]
    main_kill = next((k for k in record.kills if k.role == "main"), None)
    if main_kill is not None:
        said = (
            f"{found}: the kernel OOM-killed it at {format_size(main_kill.rss_bytes)} RSS (the process with the "
            f"highest badness in the group is chosen, not necessarily the one that allocated)"
        )
        return [said + _after_a_child(record, main_kill)]
    return [f"{found}: {cause}" if cause else f"{found}; see worker.log in the run directory"]


def descendant_kills(record: RunRecord) -> list[str]:
    found = []
    for task in record.tasks:
        for killed in task.killed_descendants:
            command = (killed.command or "?").split("\n")[0][:60]
            found.append(
                f"{task.name}[{task.id}] started pid {killed.pid} ({command}), which the kernel OOM-killed at "
                f"{format_size(killed.rss_bytes)}; the task itself {'returned' if task.state == 'SUCCESS' else 'ended ' + (task.state or '?')}, "
                f"and Celery reports no WorkerLostError for a process it did not start"
            )
    return found


def _running(record: RunRecord, at: float) -> list[tuple[TaskRecord, Execution]]:
    """Every task execution under way at monotonic time `at`, with its task."""
    return [
        (task, run)
        for task in record.tasks
        for run in task.executions
        if run.started_mono <= at and (run.finished_mono is None or run.finished_mono >= at)
    ]


def _execution_peak(run: Execution, task_id: str, killed_at: dict[tuple[str, int], int]) -> int | None:
    """An execution's peak RSS: its VmHWM at the end, or, killed, its RSS at its own kill."""
    return run.peak_rss_bytes if run.peak_rss_bytes is not None else killed_at.get((task_id, run.pid))


def bystanders(record: RunRecord) -> list[str]:
    """A pool child killed while a task in another child grew more than its own did: the kernel kills
    the process holding the most memory (often memory left by earlier tasks), not the task that grew."""
    found = []
    killed_at = {(k.task_id, k.pid): k.rss_bytes for k in record.kills if k.task_id and k.rss_bytes}
    for kill in record.kills:
        if kill.role != "child" or kill.cause != "oom" or not kill.task_id or not kill.rss_bytes:
            continue
        running = _running(record, kill.kernel_time_mono)
        victim = next(((t, r) for t, r in running if t.id == kill.task_id and r.pid == kill.pid), None)
        if victim is None or victim[1].start_rss_bytes is None:
            continue
        grew = kill.rss_bytes - victim[1].start_rss_bytes
        others = [
            (task, run, peak - run.start_rss_bytes)
            for task, run in running
            if run.pid != kill.pid
            and run.start_rss_bytes is not None
            and (peak := _execution_peak(run, task.id, killed_at)) is not None
        ]
        grower = max(others, key=lambda other: other[2], default=None)
        if grower is None or grower[2] <= grew:
            continue
        task, run, growth = grower
        own_queue = "" if task.name == kill.task_name else f"a queue and worker of its own for {task.name}, or "
        by_when = "by its own kill, later" if run.peak_rss_bytes is None else "its peak, which may have come later"
        found.append(
            f"{kill.task_name}[{kill.task_id}] was OOM-killed as a bystander: its process (pid {kill.pid}) held "
            f"{format_size(kill.rss_bytes)} at the kill, {format_size(victim[1].start_rss_bytes)} of it from before "
            f"the task started, while {task.name}[{task.id}] in pid {run.pid}, running at the kill, grew "
            f"{format_size(growth)} above its start ({by_when}); the kernel kills the process holding the most memory, not the "
            f"task that grew. What helps: worker_max_memory_per_child (a child that kept earlier tasks' memory is "
            f"replaced), {own_queue}fewer tasks at once (--concurrency)"
        )
    return found


def multiprocessing_in_prefork(record: RunRecord) -> list[str]:
    failed = [t for t in record.tasks if t.exception and DAEMONIC in t.exception]
    if not failed:
        return []
    return [
        f'{len(failed)} task(s) failed with "{DAEMONIC}": a prefork pool child is a daemonic process, and the '
        f"standard library's multiprocessing refuses to start children from one. What works: billiard's Pool "
        f"(Celery's own fork of multiprocessing), a threads pool inside the task, a program run with subprocess, "
        f"or the worker's threads/solo pool"
    ]


def reclaimable_at_limit(record: RunRecord) -> list[str]:
    """A group "at its limit" that is mostly page cache is not about to be OOM-killed."""
    summary, limit = record.summary, record.summary.limit_bytes
    kinds, peak = summary.group_kinds_at_peak or {}, summary.group_peak_bytes
    if not kinds or not limit or not peak or peak < 0.9 * limit or record.kills:
        return []
    file_bytes, unreclaimable = kinds.get("file", 0), kinds.get("anon", 0) + kinds.get("shmem", 0)
    if file_bytes < unreclaimable:
        return []
    return [
        f"the group reached {peak / limit:.0%} of its limit, but at its highest sample {format_size(file_bytes)} was "
        f"file-backed page cache, which the kernel reclaims before it kills; anonymous + shmem memory "
        f"({format_size(unreclaimable)}) is what predicts an OOM kill"
    ]


def shared_process(record: RunRecord) -> list[str]:
    main = next((p for p in record.processes if p.role == "main" and p.tasks_at_peak), None)
    if main is None or not record.summary.peak_scope.startswith("process"):
        return []
    return [
        f"tasks share the worker's main process ({record.config.pool} pool): each task's peak is the "
        f"process's (peak_is_exact false); the process peaked at {format_size(main.peak_rss_bytes)} with "
        f"{len(main.tasks_at_peak)} task(s) in flight: {', '.join(main.tasks_at_peak[:6])}"
    ]


def poison(record: RunRecord) -> list[str]:
    """A message OOM-killed on every delivery, and what stopped it: name the loop and what ends it."""
    conf = record.worker.celery_conf
    settings = (
        ", ".join(name for name in ("task_acks_late", "task_reject_on_worker_lost") if conf.get(name))
        or "acks_late + reject_on_worker_lost on the task"
    )
    return [
        f"{p.task_name}[{p.task_id}] is a poison message: OOM-killed {p.kills} times, once per delivery, and "
        f"stopped after {record.config.max_oom_redeliveries} kills ({p.stopped_by}; --max-oom-redeliveries). "
        f"With {settings} the broker gets a killed task's message back and delivers it again for ever, each "
        f"time taking a pool slot until the kernel kills it. What ends it: task_retry_on_worker_lost (Celery "
        f"5.7: a lost task is retried, so max_retries bounds it) instead of reject_on_worker_lost for this task, "
        f"RabbitMQ quorum queues' x-delivery-limit, a worker with more memory for it, or smaller chunks of work "
        f"per task"
        for p in record.poison
    ]


def failures(record: RunRecord) -> list[str]:
    """Each exception type among the tasks that failed, with the first message seen."""
    found: dict[str, tuple[int, str, str]] = {}  # type -> (count, first message, first task name)
    for task in record.tasks:
        if task.outcome != "failed" or not task.exception:
            continue
        kind, _, message = task.exception.partition(": ")
        count, first, name = found.get(kind, (0, message, task.name))
        found[kind] = (count + 1, first, name)
    return failure_sentences(found)


def failure_sentences(found: dict[str, tuple[int, str, str]]) -> list[str]:
    """One sentence per exception type: type -> (count, first message, first task name)."""
    return [
        f"{count} task(s) failed with {kind}, first in {name}: {safe_url(first)[:200]}"
        if first
        else f"{count} task(s) failed with {kind}, first in {name}"
        for kind, (count, first, name) in found.items()
    ]


_ENDED = {  # a task's outcome, as what happened to it
    "killed": "was killed",
    "descendant_killed": "lost a program it ran to a kill",
    "stuck": "never finished",
    "never_started": "never started",
    "poison": "was stopped as a poison message",
}


def chains_cut(record: RunRecord) -> list[str]:
    """A chain the plan sent that did not run to its end: which link ended it, and what never ran.
    Celery sends a chain's next task only when the one before succeeded."""
    found: list[str] = []
    firsts = [task for task in record.tasks if task.chained]
    if not firsts:
        return found
    by_root: dict[str, list[TaskRecord]] = {}  # each chain's links, in one pass over the tasks
    for task in record.tasks:
        if task.root_id and task.root_id != task.id:
            by_root.setdefault(task.root_id, []).append(task)
    for first in firsts:
        links = sorted(
            by_root.get(first.id, ()),
            key=lambda task: task.executions[0].started_mono if task.executions else task.sent_mono,
        )
        if len(links) >= len(first.chained):
            continue
        ended = next((task for task in (first, *links) if task.outcome != "succeeded"), None)
        if ended is None or ended.outcome in ("pending", "requeued"):
            continue  # still under way when the run ended: the run's status says so
        never = first.chained[len(links) :]
        who = "its first" if ended is first else f"{ended.name}[{ended.id}]"
        found.append(
            f"the chain {first.name}[{first.id}] stopped after {1 + len(links)} of its {1 + len(first.chained)} "
            f"task(s): {who} {_ENDED.get(ended.outcome, ended.outcome)}, so {', '.join(never)} never ran "
            f"(Celery sends a chain's next task only when the one before succeeded)"
        )
    return found


RULES = (
    recycling,
    untraced,
    main_process,
    slow_growth,
    worker_lost,
    descendant_kills,
    bystanders,
    chains_cut,
    multiprocessing_in_prefork,
    reclaimable_at_limit,
    shared_process,
    poison,
    failures,
)


def findings(record: RunRecord) -> list[str]:
    return [sentence for rule in RULES for sentence in rule(record)]
