"""What one worker costs, measured in a run at concurrency 1 under the target limit: the memory the
group needs before any task (the main process and every shared page), a pool child's private pages
after the fork, each task's exact marginal peak, the child's private high-water mark, and how a
child's resident memory grows from task to task (a leak's slope)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from oomlab.assemble.analysis import percentile
from oomlab.assemble.findings import poison
from oomlab.assemble.trend import STEADY_MIN_R2, fit_line
from oomlab.probe.events import CHILD_INIT
from oomlab.record.files import csv_rows, read_probe
from oomlab.record.schema import RunRecord
from oomlab.record.stream import RunTasks, TaskLine, line_of
from oomlab.workflows.recommend.startup_cost import StartupCost, startup_cost

LEAK_MIN_TASKS = 8  # fewer tasks in one child cannot tell a leak from warm-up
LEAK_WARM_UP = 2  # a child's first tasks are left out of the fit (first-call imports, the allocator's arenas)
LEAK_MIN_R2 = STEADY_MIN_R2  # a leak's start RSS climbs along a line; a poorer fit is no slope
LEAK_MAX_STEP_SHARE = 0.5  # one step making more than this share of the rise is a step, not a leak
LEAK_BYTES_PER_TASK = 256 * 1024  # a steady rise smaller than this per task is noise, not a leak


@dataclass
class WorkerProfile:
    run_dir: str
    fixed_bytes: int  # group usage with the pool idle, minus the children's private pages
    main_ready_rss_bytes: int  # the main process's RSS when the worker was ready
    child_idle_uss_bytes: int  # a pool child's private pages before its first task
    child_idle_pss_bytes: int  # its proportional share, shared pages divided among their users
    child_start_rss_bytes: int  # a child's RSS before a task (shared pages included): what ps shows
    child_max_uss_bytes: int  # the child's private high-water mark, sampled (copy-on-write and leaks show here)
    marginal_peaks: list[int] = field(default_factory=list)  # exact VmHWM - start RSS, per task
    # per task, its whole tree's unreclaimable memory above its start (programs it runs, pools inside
    # it, shmem, kernel memory; sampled): what a limit must hold beyond the pool process itself
    tree_needs: list[int] = field(default_factory=list)
    page_cache_max_bytes: int = 0  # the most page cache one task's tree touched: headroom, reclaimed before a kill
    peak_rss: list[int] = field(default_factory=list)  # exact VmHWM per task (what ru_maxrss carries)
    leak_bytes_per_task: float = 0.0  # steepest steady per-child slope of RSS at task start, past its warm-up
    leak_note: str | None = None  # the leak finding's basis, or why there is none ("not enough data", a step)
    tasks: int = 0
    kills: int = 0
    killed_tasks: int = 0  # distinct tasks OOM-killed (a redelivered one may be killed again)
    killed_task_rss_bytes: int | None = None  # the largest RSS at an OOM kill of a task
    tasks_note: str | None = None  # lines of tasks.jsonl that were not tasks (oomlab.record.stream.StreamCheck)
    startup: StartupCost | None = None  # the costliest start-up measured: this run's one child, or N together
    largest_task: str | None = None  # the name of the task with the largest need (task_need_max)
    killed_task: str | None = None  # the name of the task killed holding killed_task_rss_bytes
    # the measuring run's poison messages (a task id OOM-killed on every delivery, stopped): its findings
    poison: list[str] = field(default_factory=list)

    @property
    def child_start_bytes(self) -> int:
        """A child's private pages once started: its USS after the fork, or its share of the group's
        high-water mark while the children started, whichever is larger."""
        return max(self.child_idle_uss_bytes, self.startup.per_child_bytes if self.startup else 0)

    def with_startup(self, measured: StartupCost) -> None:
        """Keep the costlier of the start-ups measured so far (per child)."""
        if measured.measured and (self.startup is None or measured.per_child_bytes > self.startup.per_child_bytes):
            self.startup = measured

    def marginal(self, q: float) -> int:
        return int(percentile(self.marginal_peaks, q) or 0)

    @property
    def marginal_max(self) -> int:
        return max(self.marginal_peaks, default=0)

    @property
    def task_need_max(self) -> int:
        """The largest task's growth a limit must hold: its pool process's exact peak, or its whole
        tree's unreclaimable memory (a program it runs, a pool inside it), whichever is larger."""
        return max(self.marginal_max, max(self.tree_needs, default=0))

    @property
    def leaking(self) -> bool:
        return self.leak_bytes_per_task >= LEAK_BYTES_PER_TASK

    @property
    def per_child_bytes(self) -> int:
        """A child's private memory at its worst: its idle pages plus the largest task's growth, or
        the private high-water mark the sampler saw, whichever is larger; a task that was OOM-killed
        needs at least what it held at the kill. With a leak, the high-water mark and the kill are the
        leak's doing, bounded by recycling instead, so only the task's own growth counts."""
        own = self.child_start_bytes + self.task_need_max
        if self.leaking:
            return own
        killed = (self.killed_task_rss_bytes or 0) - self.child_start_rss_bytes + self.child_start_bytes
        return max(self.child_max_uss_bytes, own, killed)


def leak_slope(starts: list[list[int]]) -> tuple[float, str | None]:
    """The steepest steady slope of start RSS over each child's tasks (bytes per task), and a note:
    what it rests on, or why no leak is claimed. A slope needs LEAK_MIN_TASKS tasks in one child
    (its warm-up left out), a line that fits (R²) and a rise spread over its tasks, not one step."""
    best: tuple[float, str | None] = (0.0, None)
    doubts: list[str] = []
    for values in starts:
        if len(values) < LEAK_MIN_TASKS:
            continue
        fit = fit_line(values[LEAK_WARM_UP:])
        if fit.slope < LEAK_BYTES_PER_TASK:
            continue
        doubt = fit.doubt(LEAK_MIN_TASKS - LEAK_WARM_UP, LEAK_MIN_R2, LEAK_MAX_STEP_SHARE)
        if doubt:
            doubts.append(f"no leak: a child's start RSS over its {fit.points} tasks past warm-up: {doubt}")
        elif fit.slope > best[0]:
            best = (fit.slope, f"start RSS rose along a line over {fit.points} tasks of one child (R² {fit.r2:.2f})")
    if best[0]:
        return best
    most = max((len(values) for values in starts), default=0)
    if most < LEAK_MIN_TASKS:
        return 0.0, (
            f"not enough data for a leak: the most tasks one child ran was {most}, a slope needs {LEAK_MIN_TASKS}"
        )
    return 0.0, doubts[0] if doubts else None


def _exact(task: TaskLine, marginal: list[int], peaks: list[int], tree: list[int] | None = None) -> int:
    """Add the task's figures; its need (the larger of its exact growth and its tree's), 0 for none."""
    need = 0
    if tree is not None and task.needs_above_start_bytes is not None:
        tree.append(task.needs_above_start_bytes)
        need = task.needs_above_start_bytes
    if task.peak_is_exact and task.peak_above_start_bytes is not None:
        marginal.append(task.peak_above_start_bytes)
        need = max(need, task.peak_above_start_bytes)
        if task.peak_rss_bytes is not None:
            peaks.append(task.peak_rss_bytes)
    return need


def profile_from_run(run_dir: str, record: RunRecord) -> WorkerProfile:
    """The profile from a run's record and every task it ran: run.json's list and a load run's stream
    (RunTasks), read once. Its per-task lists are the recommend record's contract: a number per task,
    not a task each (a measuring run is the scenario's plan at concurrency 1)."""
    first_task: float | None = None
    by_child: dict[int, list[tuple[float, int]]] = {}
    marginal: list[int] = []
    peaks: list[int] = []
    tree: list[int] = []
    cache = 0
    largest: tuple[int, str] = (0, "")
    tasks = RunTasks(run_dir, record)
    for task in record.tasks:  # every execution of a plan run's task: a requeued one ran twice
        for run in task.executions:
            first_task = min(first_task or run.started_mono, run.started_mono)
            if run.start_rss_bytes is not None:
                by_child.setdefault(run.pid, []).append((run.started_mono, run.start_rss_bytes))
        largest = max(largest, (_exact(line_of(task), marginal, peaks, tree), task.name))
        cache = max(cache, task.page_cache_above_start_bytes or 0)
    streamed = 0
    for line in tasks.streamed():  # a load run's: each task's first start, and its last run's start RSS
        streamed += 1
        began = line.last_started_mono
        if line.started_mono is not None:
            first_task = min(first_task or line.started_mono, line.started_mono)
        if began is not None and line.pid is not None and line.start_rss_bytes is not None:
            by_child.setdefault(line.pid, []).append((began, line.start_rss_bytes))
        largest = max(largest, (_exact(line, marginal, peaks, tree), line.name))
        cache = max(cache, line.page_cache_above_start_bytes or 0)
    if first_task is None:
        first_task = record.ended_mono or 0.0
    idle_usage, idle_uss, idle_pss = 0, {}, {}
    for row in csv_rows(os.path.join(run_dir, "group.csv")):
        if float(row["t_mono"]) < first_task:
            idle_usage = int(row["usage_bytes"])
    for entry in read_probe(os.path.join(run_dir, "probe.jsonl")):
        if entry["ev"] == CHILD_INIT and (uss := entry.get("uss")) and entry["t"] < first_task:
            idle_uss[entry["pid"]] = uss
            idle_pss[entry["pid"]] = entry.get("pss") or 0
    # a leak keeps going: a steady slope over each child's tasks, past the allocator's warm-up
    leak, leak_note = leak_slope([[rss for _, rss in sorted(runs)] for runs in by_child.values()])
    task_kills = [k for k in record.kills if k.task_id]
    child_uss = [p.max_uss_bytes for p in record.processes if p.role == "child" and p.max_uss_bytes]
    fixed = max(0, idle_usage - sum(idle_uss.values()))
    profile = WorkerProfile(
        run_dir=run_dir,
        fixed_bytes=fixed,
        main_ready_rss_bytes=record.worker.ready_rss_bytes or 0,
        child_idle_uss_bytes=int(sum(idle_uss.values()) / len(idle_uss)) if idle_uss else 0,
        child_idle_pss_bytes=int(sum(idle_pss.values()) / len(idle_pss)) if idle_pss else 0,
        child_start_rss_bytes=int(percentile([min(runs)[1] for runs in by_child.values()], 50) or 0),
        child_max_uss_bytes=max(child_uss, default=0),
        marginal_peaks=marginal,
        tree_needs=tree,
        page_cache_max_bytes=cache,
        peak_rss=peaks,
        leak_bytes_per_task=leak,
        leak_note=leak_note,
        tasks=len(record.tasks) + streamed,
        kills=len(task_kills),
        killed_tasks=len({k.task_id for k in task_kills}),
        killed_task_rss_bytes=max((k.rss_bytes or 0 for k in task_kills), default=None),
        tasks_note=tasks.check.note(),
        largest_task=largest[1] or None,
        killed_task=max(task_kills, key=lambda k: k.rss_bytes or 0).task_name if task_kills else None,
        poison=poison(record),
    )
    profile.with_startup(startup_cost(run_dir, fixed))
    return profile
