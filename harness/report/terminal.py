"""The end-of-run table in the terminal, and the live progress line while a run goes on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from oomlab.config.durations import format_seconds
from oomlab.config.sizes import format_size, written_decimal
from oomlab.record.load import LoadSection, NameFigures
from oomlab.record.profile import RunProfile
from oomlab.record.schema import RunRecord
from oomlab.report.by_name import by_name_table
from oomlab.report.latency import AT_ONCE, latency_text
from oomlab.run.hooks import RunHook
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from oomlab.run.view import RunView


KILL_ROWS = 20  # a load run can kill hundreds: the terminal shows the first, the record keeps all


def _ms(seconds: float | None) -> str:
    return format_seconds(seconds)


def _latency(seconds: float | None) -> str:
    return latency_text(seconds, _ms)


def _decimal(memory: str) -> str:
    return f" ({memory.strip()}, decimal units: write MiB for binary)" if written_decimal(memory) else ""


def render_summary(record: RunRecord, console: Console) -> None:
    summary = record.summary
    config = record.config
    console.print(
        f"[bold]{config.scenario}[/bold] · {config.pool} × {config.concurrency} · "
        f"limit {format_size(config.memory_bytes)}{_decimal(config.memory)} · oom-scope {config.oom_scope} · "
        f"{record.environment.cgroup or '?'} · status [bold]{record.status}[/bold]"
    )
    if record.message:
        console.print(record.message)
    outcomes = Table(title="tasks by outcome", title_justify="left")
    for name in summary.outcomes:
        outcomes.add_column(name.replace("_", " "), justify="right")
    outcomes.add_row(*[str(v) for v in summary.outcomes.values()])
    console.print(outcomes)

    peaks = Table(title="exact peak RSS per task (VmHWM, reset at prerun)", title_justify="left")
    for column in ("", "n", "p50", "p95", "max"):
        peaks.add_column(column, justify="right")
    rows = [(summary.peak_rss_bytes, "peak RSS"), (summary.peak_above_start_bytes, "above start")]
    rows += [
        (spread, label)
        for spread, label in (
            (summary.tree_peak_above_start_bytes, "tree above start"),
            (summary.needs_above_start_bytes, "needs (sampled)"),
            (summary.page_cache_above_start_bytes, "page cache"),
        )
        if spread.n
    ]
    for spread, label in rows:
        peaks.add_row(label, str(spread.n), *(format_size(q) for q in (spread.p50, spread.p95, spread.max)))
    group_peak = summary.group_peak_bytes
    fraction = summary.group_peak_fraction
    peaks.add_row("group peak", "", "", "", f"{format_size(group_peak)} ({fraction:.0%} of limit)" if fraction else "-")
    console.print(peaks)
    named = by_name_table(record)
    if named is not None:
        console.print(named)

    if record.kills:
        kills = Table(title="OOM kills (latency after the kernel's kill)", title_justify="left")
        for column in ("pid", "role", "task", "cause", "rss", "kmsg", "oom event", "pidfd", "celery"):
            # a narrow terminal folds a task's name and id rather than cutting them to "alloc… 600a4…"
            kills.add_column(
                column,
                justify="right" if column not in ("role", "task", "cause") else "left",
                overflow="fold" if column == "task" else "ellipsis",
            )
        for kill in record.kills[:KILL_ROWS]:
            task = (
                f"{kill.task_name or '-'} {kill.task_id[:8]}"
                if kill.task_id
                else ("start-up" if kill.during_startup else "-")
            )
            detected = kill.detected
            celery = detected.get("celery_worker_lost", detected.get("celery_heartbeat_expiry"))
            kills.add_row(
                str(kill.pid),
                kill.role,
                task,
                kill.cause,
                format_size(kill.rss_bytes),
                _latency(detected.get("kmsg")),
                _latency(detected.get("oom_event")),
                _latency(detected.get("pidfd")),
                _latency(celery),
            )
        captions = []
        if len(record.kills) > KILL_ROWS:
            captions.append(
                f"the first {KILL_ROWS} of {len(record.kills)} kills; every one is in run.json and report.html"
            )
        if any(seconds < 0 for kill in record.kills[:KILL_ROWS] for seconds in kill.detected.values()):
            captions.append(f"{AT_ONCE}: seen no later than the kernel's stamp of the kill, which is the zero")
        kills.caption = "\n".join(captions) or None
        console.print(kills)
    else:
        console.print("no OOM kills")
    processes = []
    if summary.main_peak_rss_bytes:
        processes.append(f"main process peak {format_size(summary.main_peak_rss_bytes)}")
    growth = summary.child_uss_bytes.max
    if growth is not None:
        processes.append(f"child USS (private since the fork) up to {format_size(growth)}")
    if summary.sum_rss_peak_bytes:
        processes.append(
            f"RSS summed over processes up to {format_size(summary.sum_rss_peak_bytes)} while the "
            f"group used {format_size(summary.group_usage_at_sum_rss_peak_bytes)}"
        )
    if summary.children_recycled:
        processes.append(f"{summary.children_recycled} children recycled")
    traced = summary.traced_peak_bytes.max
    if traced is not None:
        processes.append(f"tracemalloc peak up to {format_size(traced)}")
    if processes:
        console.print(" · ".join(processes))
    for line in needs_lines(record):
        console.print(line, highlight=False, markup=False)
    for sentence in summary.findings:
        console.print(f"• {sentence}")
    if summary.profile:
        render_profiles(record, console)
    if record.load is not None:
        render_load(record.load, console)


PROFILED_TASKS_SHOWN = 5
NEEDS_LINES = 5
CACHE_WORTH_SAYING = 0.5  # page cache above this share of a task's tree peak: its need is told apart


def needs_lines(record: RunRecord) -> list[str]:
    """Tasks whose tree peak is mostly page cache: what a limit must hold for them, and the cache."""
    lines = []
    for task in record.tasks:
        cache, needs, tree = (
            task.page_cache_above_start_bytes,
            task.needs_above_start_bytes,
            task.tree_peak_above_start_bytes,
        )
        if cache is None or needs is None or not tree or cache < tree * CACHE_WORTH_SAYING:
            continue
        lines.append(
            f"{task.label or task.name} {task.id[:8]}: needs {format_size(needs)}, touched {format_size(cache)} of page "
            f"cache (tree peak +{format_size(tree)}; the kernel reclaims the cache before it kills)"
        )
    if len(lines) > NEEDS_LINES:
        lines = [*lines[:NEEDS_LINES], f"... and {len(lines) - NEEDS_LINES} more such tasks in run.json"]
    return lines


def render_profiles(record: RunRecord, console: Console) -> None:
    """Where the memory went (--profile): killed tasks first, then those memray saw hold the most."""
    from oomlab.observe.profiling.text import cost_line, task_lines

    summary = record.summary.profile or RunProfile()
    profiled = [(t, t.profile) for t in record.tasks if t.profile is not None]
    profiled.sort(key=lambda pair: (pair[1].killed_at_bytes is None, -pair[1].held_bytes))
    console.print(f"[bold]where the memory went[/bold] (memray, {len(profiled)} task(s) profiled)")
    for task, _ in profiled[:PROFILED_TASKS_SHOWN]:
        for line in task_lines(task):
            console.print(line, markup=False, highlight=False)
    if len(profiled) > PROFILED_TASKS_SHOWN:
        console.print(f"… and {len(profiled) - PROFILED_TASKS_SHOWN} more in run.json")
    for path, error in summary.read_errors.items():
        console.print(f"could not read {path}: {error}", markup=False)
    cost = cost_line(summary.cost)
    if cost:
        console.print(cost, markup=False, highlight=False)


def render_load(load: LoadSection, console: Console) -> None:
    """A load run's figures per task name: rates, latency percentiles, counts."""
    table = Table(title="load: rates in tasks/s, latency in ms (each task in tasks.jsonl)", title_justify="left")
    for column in (
        "task",
        "sent",
        "ok",
        "failed",
        "killed",
        "offered",
        "achieved",
        "wait p95",
        "run p95",
        "e2e p50",
        "e2e p95",
        "e2e p99",
        "e2e max",
    ):
        table.add_column(column, justify="left" if column == "task" else "right")
    rows: list[tuple[str, NameFigures]] = [*sorted(load.by_task.items()), ("all", load)]
    for name, figures in rows:
        counts, latency = figures.counts, figures.latency
        end_to_end = latency.end_to_end
        by_tasks = f" ({counts.sent_by_tasks} by tasks)" if counts.sent_by_tasks and name != "all" else ""
        table.add_row(
            name,
            f"{counts.sent}{by_tasks}",
            str(counts.succeeded),
            str(counts.failed),
            str(counts.killed),
            _number(figures.offered_per_s),
            _number(figures.achieved_per_s),
            _number(latency.queue_wait.p95, 1000),
            _number(latency.run_time.p95, 1000),
            *(_number(q, 1000) for q in (end_to_end.p50, end_to_end.p95, end_to_end.p99, end_to_end.max)),
        )
    console.print(table)
    schedule = load.schedule
    if schedule is not None and schedule.asked_per_s:
        lateness = schedule.lateness_s
        console.print(
            f"schedule: {_rate(schedule.offered_per_s)} offered of {_rate(schedule.asked_per_s)} asked "
            f"({schedule.offered_error_percent} %), sends late by p50 {_ms(lateness.p50)}, "
            f"p99 {_ms(lateness.p99)}, max {_ms(lateness.max)}"
        )
    for sentence in load.findings:
        console.print(f"• {sentence}")


class Progress(RunHook):
    """A one-line live status on stderr while the run goes on (only on a terminal)."""

    def __init__(self, console: Console):
        self.console = console
        self.status = console.status("starting worker…")
        self.status.start()
        self._ended = False

    def _usage(self, run: RunView) -> str:
        usage = run.observers.sampler.latest_usage if run.observers else None
        return f"group {format_size(usage)} / {format_size(run.config.memory_bytes)}"

    def starting(self, run: RunView) -> None:
        self.status.update(f"starting worker… {self._usage(run)}")

    def running(self, run: RunView) -> None:
        replay, group = run.replay, run.group
        if replay is None or group is None:
            return
        done, total = replay.progress()  # a plan's, streamed or held (a load run's view is LoadLive)
        self.status.update(
            f"{run.scenario.name}: {done}/{total} tasks final · {group.oom_kill_count()} OOM kills · {self._usage(run)}"
        )

    def stop(self) -> None:
        self.end()

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self.status.stop()


class LoadLive(RunHook):
    """A load run's live view: a rich panel redrawn on a terminal; otherwise (CI logs) a
    plain line every PLAIN_SECONDS. Its own hook, beside Progress (which follows a plan replay)."""

    PLAIN_SECONDS = 5.0

    def __init__(self, console: Console):
        self.console = console
        self.live = None
        self.last_line = 0.0
        if console.is_terminal:
            from rich.live import Live

            self.live = Live(console=console, refresh_per_second=4, transient=True)
            self.live.start()

    def starting(self, run: RunView) -> None:
        if self.live is not None:
            usage = run.observers.sampler.latest_usage if run.observers else None
            self.live.update(f"starting worker… group {format_size(usage)} / {format_size(run.config.memory_bytes)}")

    def running(self, run: RunView) -> None:
        live = getattr(run.replay, "live", None)  # the load driver's figures (a plan replay has none)
        if live is None:
            return
        figures = live()
        if self.live is not None:
            self.live.update(load_panel(run.scenario.name, figures))
            return
        import time

        if time.monotonic() - self.last_line >= self.PLAIN_SECONDS:
            self.last_line = time.monotonic()
            self.console.print(load_line(run.scenario.name, figures), highlight=False, soft_wrap=True)

    def stop(self) -> None:
        self.end()

    def end(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def _number(value: float | None, scale: float = 1.0) -> str:
    return "-" if value is None else f"{value * scale:.1f}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}/s"


def _load_cells(figures) -> list[tuple[str, str]]:
    return [
        ("elapsed", f"{figures.elapsed:.0f} s"),
        ("sent / final", f"{figures.sent} / {figures.final}"),
        ("offered", _rate(figures.offered_per_s)),
        ("achieved", _rate(figures.achieved_per_s)),
        ("in flight", str(figures.in_flight)),
        ("queue depth", "-" if figures.queue_depth is None else str(figures.queue_depth)),
        ("end-to-end p95", _ms(figures.end_to_end_p95)),
        ("group", _group(figures)),
        ("OOM kills", str(figures.kills)),
    ]


def _group(figures) -> str:
    """Usage against the limit, and how much of it is page cache (a long run's log and files fill the
    group with cache that the kernel reclaims before it kills: usage near the limit is not danger)."""
    text = f"{format_size(figures.group_bytes)} / {format_size(figures.limit_bytes)}"
    cache = figures.group_file_bytes
    if cache and figures.group_bytes and cache >= 0.1 * figures.group_bytes:
        text += f" ({format_size(cache)} page cache)"
    return text


def load_line(name: str, figures) -> str:
    return f"{name}: " + " · ".join(f"{label} {value}" for label, value in _load_cells(figures))


def load_panel(name: str, figures):
    from rich.panel import Panel

    table = Table.grid(padding=(0, 2))
    table.add_column(justify="right", style="bold")
    table.add_column()
    for label, value in _load_cells(figures):
        table.add_row(label, value)
    return Panel(table, title=f"oomlab load · {name}", expand=False)
