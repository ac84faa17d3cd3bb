"""Each task's outcome from what the backend says, what the probe saw, and the kills."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from oomlab.assemble.needs import fill_needs, tree_above_start
from oomlab.observe.sampler import LeafSeries, PidStats
from oomlab.record.descendants import Descendant, KilledDescendant
from oomlab.record.kinds import KindBytes, MemoryKinds
from oomlab.record.schema import Execution, KillRecord, Outcome, TaskRecord

OUTCOMES: tuple[Outcome, ...] = (
    "succeeded",
    "failed",
    "killed",
    "descendant_killed",
    "requeued",
    "stuck",
    "never_started",
    "poison",
)
FINAL_STATES = ("SUCCESS", "FAILURE", "REVOKED")
UNREAD_COMMAND = "?"  # the sampler saw it only while its command line read empty (mid-exec or exiting)
SHARED_POOLS = ("solo", "threads", "gevent", "eventlet")  # tasks run in the worker's main process


@dataclass
class TreeContext:
    """What the run saw outside the probe about the processes tasks started."""

    pool: str = "prefork"
    pid_stats: dict[int, PidStats] = field(default_factory=dict)
    leaf_of_pid: dict[int, int] = field(default_factory=dict)  # pid -> pool child whose leaf it was in
    pool_children: frozenset[int] = frozenset()
    poison: frozenset[str] = frozenset()  # task ids stopped after --max-oom-redeliveries kills
    leaves: dict[int, LeafSeries] = field(default_factory=dict)  # pool child pid -> its leaf over time


def describe_exception(result: object) -> str | None:
    if isinstance(result, BaseException):
        return f"{type(result).__name__}: {result}"
    if isinstance(result, dict) and "exc_type" in result:
        return f"{result['exc_type']}: {result.get('exc_message')}"
    return None if result is None else str(result)


def classify(
    state: str | None, exception: str | None, runs: list[Execution], killed: bool, descendant_killed: bool = False
) -> Outcome:
    """succeeded | failed | killed | descendant_killed (it returned, but a process it started was
    OOM-killed) | requeued | stuck (STARTED, no one will finish it) | never_started. (`poison`, a
    message stopped after repeated OOM kills, is the run's decision, set by fill_task.)

    A FAILURE caused by the worker process dying is `killed`, and so is a task whose last run was
    OOM-killed before the backend holds a final state (Celery notices the lost child seconds later,
    or never when the whole worker died). A task with no final state that was killed and started
    again is `requeued`; started, not killed, but not final is `stuck`."""
    if state in ("SUCCESS", "FAILURE") and descendant_killed and not (exception and "WorkerLostError" in exception):
        return "descendant_killed"
    if state == "SUCCESS":
        return "succeeded"
    if state in ("FAILURE", "REVOKED"):
        return "killed" if exception and "WorkerLostError" in exception else "failed"
    if killed and len(runs) > 1:
        return "requeued"
    if killed and not descendant_killed and runs and runs[-1].finished_mono is None:
        return "killed"  # the kill is attributed; the backend's FAILURE follows when Celery notices, or never
    if runs or state == "STARTED":
        return "stuck"
    return "never_started"


def fill_task(
    task: TaskRecord,
    state: str | None,
    exception: str | None,
    runs: list[Execution],
    kills: list[KillRecord],
    tree: TreeContext | None = None,
) -> None:
    tree = tree or TreeContext()
    own_kills = [k for k in kills if k.task_id == task.id and k.role != "descendant"]
    task.killed_descendants = [
        KilledDescendant(
            pid=k.pid,
            command=k.command,
            rss_bytes=k.rss_bytes,
            kinds=KindBytes.of(k.kinds),
            kernel_time_mono=k.kernel_time_mono,
        )
        for k in kills
        if k.task_id == task.id and k.role == "descendant"
    ]
    killed_pids = {k.pid for k in own_kills}
    for run in runs:
        run.killed = run.pid in killed_pids and run.finished_mono is None
    task.state, task.exception, task.executions, task.attempts = state, exception, runs, len(runs)
    task.outcome = classify(state, exception, runs, bool(killed_pids), bool(task.killed_descendants))
    if task.id in tree.poison:
        task.outcome = "poison"
    first = runs[0] if runs else None
    if first is not None:  # Celery's links as the worker's request had them
        task.parent_id = task.parent_id or first.parent_id
        task.root_id = task.root_id or first.root_id
        task.group_id = task.group_id or first.group_id
    task.root_id = task.root_id or task.id  # a task sent from outside the worker is its own root
    if not runs:
        return
    last = runs[-1]
    task.pid, task.start_rss_bytes = last.pid, last.start_rss_bytes
    task.traced_peak_bytes = last.traced_peak_bytes
    own_kill = next((k for k in own_kills if k.pid == last.pid), None)
    if last.peak_rss_bytes is not None:
        task.peak_rss_bytes, task.peak_is_exact = last.peak_rss_bytes, True
    else:  # killed mid-task: the best evidence is the RSS the kernel reported at the kill
        task.peak_rss_bytes, task.peak_is_exact = (own_kill.rss_bytes if own_kill else None), False
        task.peak_note = "killed mid-task: the RSS the kernel reported at the kill" if own_kill else None
    if task.peak_rss_bytes is not None and task.start_rss_bytes is not None:
        task.peak_above_start_bytes = task.peak_rss_bytes - task.start_rss_bytes
    if last.shared_process:
        task.peak_is_exact, task.peak_note = False, shared_note(last, tree.pool)
    _fill_tree(task, last, tree)
    if not last.shared_process:
        fill_needs(task, last, own_kill, tree.leaves)
    task.memory_kinds = MemoryKinds(
        process_end=KindBytes.of(last.kinds_end),
        tree_end=KindBytes.of(last.tree_kinds_end),
        at_kill=KindBytes.of(own_kill.kinds if own_kill else None),
    )


def shared_note(run: Execution, pool: str) -> str:
    """Why a task in a shared process has no exact peak of its own."""
    where = f"ran in the worker's main process ({pool} pool)"
    if run.in_flight:
        note = (
            f"{where} alongside {len(run.in_flight)} other task(s) ({', '.join(sorted(run.in_flight)[:4])}): "
            f"VmHWM is the process's, and includes theirs"
        )
    else:
        note = f"{where}: VmHWM over the task's span is the process's, the consumer's own memory included"
    if not run.peak_reset:
        note += "; VmHWM was not reset at its start (another task was running), so the figure reaches back before it"
    return note


def _fill_tree(task: TaskRecord, run: Execution, tree: TreeContext) -> None:
    """The task's whole tree: the leaf's peak above its start, and each process the task started."""
    if run.tree_peak_bytes is not None and run.tree_start_bytes is not None:
        task.tree_peak_above_start_bytes, task.tree_peak_is_exact = tree_above_start(
            run.tree_peak_bytes, run.tree_start_bytes, run.tree_peak_exact, run.shared_process
        )
    task.tree_note = run.tree_note
    if run.finished_mono is None and task.tree_note is None:
        task.tree_note = "the pool process was killed before task_postrun: no tree reading"
    task.descendants = descendants(run, tree, task.killed_descendants)


def descendants(run: Execution, tree: TreeContext, killed: list[KilledDescendant]) -> list[Descendant]:
    """Processes born in the task's leaf during its run: the sampler's view (sampled RSS), the
    probe's exact VmHWM for those alive at the end, the kernel's figure for those it killed."""
    end = run.finished_mono if run.finished_mono is not None else float("inf")
    found: dict[int, Descendant] = {}
    for pid, stats in tree.pid_stats.items():
        born_here = tree.leaf_of_pid.get(pid) == run.pid and pid != run.pid and pid not in tree.pool_children
        if born_here and run.started_mono <= stats.first_seen <= end:  # started during the task
            found[pid] = Descendant(
                pid=pid,
                command=stats.command or UNREAD_COMMAND,
                peak_rss_bytes=stats.max_rss,
                peak_is_exact=False,  # sampled
                # not in the leaf when the probe read it at task_postrun: it had ended
                ended="exited" if run.finished_mono is not None else "unknown (the task was killed)",
            )
    for alive in run.descendants_alive:
        seen = found.get(alive.pid)
        found[alive.pid] = Descendant(
            pid=alive.pid,
            command=seen.command if seen else alive.command,
            peak_rss_bytes=alive.peak_rss,
            peak_is_exact=alive.peak_rss is not None,
            ended="running at the task's end",
        )
    for kill in killed:
        seen = found.get(kill.pid)
        found[kill.pid] = Descendant(
            pid=kill.pid,
            command=seen.command if seen else kill.command or "",
            peak_rss_bytes=kill.rss_bytes,
            peak_is_exact=False,
            ended="OOM-killed",
        )
    exited = [pid for pid, entry in found.items() if entry.ended == "exited"]
    if run.reaped_descendant_peak_bytes is not None and len(exited) == 1:  # ru_maxrss, exact
        found[exited[0]] = replace(
            found[exited[0]], peak_rss_bytes=run.reaped_descendant_peak_bytes, peak_is_exact=True
        )
    return sorted(found.values(), key=lambda entry: entry.pid)
