"""The sections of one run's page: headline figures, findings, the memory timeline with task spans
and kills, the kills with their detector latencies, the load (when the run had one), every task,
and the environment."""

from __future__ import annotations

import json
from html import escape

from oomlab.config.durations import format_seconds
from oomlab.config.sizes import format_size
from oomlab.record.stream import TaskLine
from oomlab.report.html_data import (
    TIME_KEY,
    KillView,
    LoadView,
    RunView,
    Series,
    StreamView,
    TaskView,
    lanes,
    load_view,
    started_by,
    task_groups,
    task_tree,
)
from oomlab.report.html_page import Cell, bullet_list, cards, cell, flatten, key_values, section, table
from oomlab.report.html_svg import (
    WIDTH,
    Column,
    KillMark,
    SpanMark,
    TreeLane,
    attr,
    histogram_svg,
    lines_svg,
    timeline_svg,
)
from oomlab.report.latency import latency_text

DETECTOR_ORDER = (
    "kmsg",
    "oom_event",
    "oomlab",
    "pidfd",
    "sampler",
    "celery_pool_noticed",
    "celery_worker_lost",
    "celery_event_received",
    "celery_heartbeat_expiry",
)
TASK_COLUMNS = [
    "#",
    "task id",
    "name",
    "started by",
    "label",
    "outcome",
    "pid",
    "attempts",
    "start RSS",
    "peak RSS",
    "above start",
    "tree above start",
    "needs",
    "page cache",
    "peak",
    "seconds",
    "profile",
    "exception",
]
NUMERIC_TASK_COLUMNS = (
    "#",
    "pid",
    "attempts",
    "start RSS",
    "peak RSS",
    "above start",
    "tree above start",
    "needs",
    "page cache",
    "seconds",
)
MAX_TREE_LANES = 60  # the timeline draws the first trees of tasks started by tasks up to this many lanes


def seconds_text(value: float | None) -> str:
    return format_seconds(value)


def detector_text(value: float | None) -> str:
    """A detector's latency after a kill (oomlab.report.latency: a negative one is a bound)."""
    return latency_text(value, seconds_text)


def _subtitle(view: RunView) -> str:
    parts = [view.scenario, f"variant {view.variant}" if view.variant else "", f"{view.pool} × {view.concurrency}"]
    parts += [f"limit {format_size(view.limit_bytes)}", f"oom-scope {view.oom_scope}", f"status {view.status}"]
    return " · ".join(p for p in parts if p)


def title_and_subtitle(view: RunView) -> tuple[str, str]:
    return f"oomlab run {view.run_id}", _subtitle(view)


def headline(view: RunView) -> str:
    outcomes = view.summary.get("outcomes") or {}
    peak = (view.summary.get("peak_rss_bytes") or {}).get("max")
    group_peak = view.summary.get("group_peak_bytes")
    fraction = view.summary.get("group_peak_fraction")
    oomlab_latency = ((view.summary.get("detection_seconds") or {}).get("oomlab") or {}).get("p50")
    items = [
        (str(view.task_count), "tasks", ""),
        (str(outcomes.get("succeeded", 0)), "succeeded", "good"),
        (str(outcomes.get("killed", 0)), "killed", "bad" if outcomes.get("killed") else ""),
        (str(outcomes.get("failed", 0)), "failed", "bad" if outcomes.get("failed") else ""),
        (format_size(peak), "largest exact task peak (VmHWM)", ""),
        (
            f"{format_size(group_peak)}" + (f" ({fraction:.0%})" if isinstance(fraction, int | float) else ""),
            "group peak (of the limit)",
            "bad" if isinstance(fraction, int | float) and fraction >= 1 else "",
        ),
        (str(len(view.kills)), "OOM kills", "bad" if view.kills else ""),
    ]
    if oomlab_latency is not None:
        items.append((detector_text(oomlab_latency), "oomlab saw a kill (median)", ""))
    status = (
        ""
        if view.status == "complete"
        else f'<p class="status-bad">{escape(view.status)}: {escape(view.message or "")}</p>'
    )
    return status + cards(items)


def _span_tip(
    task: TaskView,
    pid: int,
    peak: int | None,
    killed: bool,
    start: float,
    end: float,
    link: bool,
    starter: TaskView | None = None,
) -> str:
    if peak is not None:
        peak_line = f"peak {format_size(peak)}" + (" (exact, VmHWM)" if task.peak_is_exact else " (not exact)")
    elif killed and task.peak_rss_bytes is not None:  # the kernel's RSS at the kill, no VmHWM read
        peak_line = f"RSS at the kill {format_size(task.peak_rss_bytes)} (the kernel's figure, not an exact peak)"
    else:
        peak_line = "peak not measured"
    head = f"{task.name} · {task.label}" if task.label else task.name
    return "\n".join(
        [
            head,
            f"task {task.id}",
            *([f"started by {starter.name} {starter.id}"] if starter is not None else []),
            peak_line,
            f"outcome {task.outcome}" + (" (this run of it was killed)" if killed else ""),
            f"pid {pid} · {start:.2f}-{end:.2f} s",
            *([f"click: memray flame graph ({task.flamegraph})"] if link and task.flamegraph else []),
        ]
    )


def _kill_tip(kill: KillView) -> str:
    lines = [
        f"OOM kill ({kill.cause}) of {kill.role} {kill.pid}",
        f"task {kill.task_name or '-'} {kill.task_id or ''}".rstrip(),
        f"RSS at the kill {format_size(kill.rss_bytes)}",
        f"kernel time {kill.at_s:.3f} s ({kill.time_source})",
        "seen after the kill:",
    ]
    lines += [f"  {name} +{detector_text(kill.detected[name])}" for name in _detectors([kill])]
    return "\n".join(lines)


def _detectors(kills: list[KillView]) -> list[str]:
    seen = {name for kill in kills for name in kill.detected}
    return [n for n in DETECTOR_ORDER if n in seen] + sorted(seen - set(DETECTOR_ORDER))


def timeline_figure(
    view: RunView,
    series: list[Series],
    duration_s: float | None = None,
    y_high_bytes: float | None = None,
    width: int = WIDTH,
    link_flamegraphs: bool = False,
) -> str:
    """The run's memory over time; compare pages pass one duration and height for every variant.
    Only the run's own page (in the run directory) links spans to flame graphs: their paths are
    relative to it."""
    if not series and not view.tasks:
        return '<p class="note">no samples: the run stopped before its worker started</p>'
    order = lanes(view)
    roles = {p.pid: p.role for p in view.processes}
    by_id = {task.id: task for task in view.tasks}
    starters = {task_id: by_id[starter] for task_id, starter in started_by(view.tasks).items()}

    def marks(task: TaskView, lane: int | None) -> list[SpanMark]:
        """Its spans on its process's lane, or (`lane` given) on its lane of the band."""
        return [
            SpanMark(
                order.index(span.pid) if lane is None else lane,
                span.start_s,
                span.end_s,
                "killed" if span.killed else task.outcome,
                _span_tip(
                    task,
                    span.pid,
                    span.peak_rss_bytes,
                    span.killed,
                    span.start_s,
                    span.end_s,
                    link_flamegraphs,
                    starters.get(task.id),
                ),
                task.id,
                (task.flamegraph or "") if link_flamegraphs else "",
                tree=lane is not None,
            )
            for span in task.spans
        ]

    spans = [mark for task in view.tasks for mark in marks(task, None)]
    tree_lanes: list[TreeLane] = []
    for number, group in enumerate(task_groups(view.tasks)):
        if len(tree_lanes) + len(group) > MAX_TREE_LANES:
            break  # the table below still lists every task under the one that started it
        root = group[0][0]
        for task, depth in group:
            spans.extend(marks(task, len(tree_lanes)))
            tree_lanes.append(TreeLane(task.name, depth, number, root.id))
    kills = [KillMark(kill.at_s, f"kill {kill.pid}", _kill_tip(kill)) for kill in view.kills]
    svg = timeline_svg(
        series,
        view.limit_bytes,
        duration_s if duration_s is not None else view.duration_s,
        [f"{roles.get(pid, 'child')} {pid}" for pid in order],
        spans,
        kills,
        f"memory of run {view.run_id} over time",
        y_high_bytes,
        width,
        tree_lanes,
    )
    return f"<figure>{svg}</figure>"


def kills_table(view: RunView) -> str:
    if not view.kills:
        return '<p class="note">no OOM kill in this run</p>'
    detectors = _detectors(view.kills)
    columns = ["pid", "role", "task", "cause", "RSS at kill", "kernel time", *detectors]
    rows = [
        [
            cell(kill.pid, kill.pid),
            cell(kill.role),
            cell(kill.task_name or "-", tip=kill.task_id or ""),
            cell(kill.cause),
            cell(format_size(kill.rss_bytes), kill.rss_bytes),
            cell(f"{kill.at_s:.3f} s", kill.at_s, tip=kill.time_source),
            *[
                cell(
                    detector_text(kill.detected.get(n)),
                    kill.detected.get(n),
                    tip=f"{n}: seconds after the kernel's kill",
                )
                for n in detectors
            ],
        ]
        for kill in view.kills
    ]
    messages = [kill.kernel_message for kill in view.kills if kill.kernel_message]
    kernel = "".join(f"<pre>{escape(m)}</pre>" for m in messages)
    return table(columns, rows, "kills", numeric=["pid", "RSS at kill", "kernel time", *detectors]) + kernel


def _peak_cell(task: TaskView) -> Cell:
    if task.peak_rss_bytes is None:
        return cell("not measured", "", tip="no postrun record: the process died during the task")
    return cell(
        "exact" if task.peak_is_exact else "not exact", tip="VmHWM reset at prerun" if task.peak_is_exact else ""
    )


def _profile_cell(task: TaskView) -> Cell:
    if not task.flamegraph:
        return cell("")
    link = f'<a class="flamegraph" href="{attr(task.flamegraph)}">flame graph</a>'
    return Cell(html=link, sort=1, tip=f"memray flame graph of this task: {task.flamegraph}")


def _name_cell(task: TaskView, depth: int) -> Cell:
    """Its name, indented under the task that started it."""
    if not depth:
        return cell(task.name)
    branch = '<span class="branch">\u2514 </span>'
    return Cell(
        html=f'<span class="tree-name" style="padding-left:{min(depth - 1, 8) * 1.2:g}em">{branch}{escape(task.name)}</span>',
        sort=task.name,
    )


def _starter_cell(starter: TaskView | None) -> Cell:
    if starter is None:
        return cell("")
    return cell(f"{starter.name} {starter.id[:8]}", starter.id, tip=f"started by {starter.name} {starter.id}")


def tasks_table(view: RunView) -> str:
    """Every task, each right under the task that started it (a chord's parts and callback under the
    task that sent the chord); `#` gives that order back after a sort."""
    tree = task_tree(view.tasks)
    by_id = {task.id: task for task in view.tasks}
    starters = {task_id: by_id[starter] for task_id, starter in started_by(view.tasks).items()}
    rows = [
        [
            cell(index, index),
            cell(task.id[:8], task.id, tip=task.id),
            _name_cell(task, depth),
            _starter_cell(starters.get(task.id)),
            cell(task.label),
            cell(task.outcome, css=f"outcome outcome-{task.outcome}"),
            cell(task.pid, task.pid if task.pid is not None else ""),
            cell(task.attempts, task.attempts),
            cell(format_size(task.start_rss_bytes), _sort(task.start_rss_bytes)),
            cell(format_size(task.peak_rss_bytes), _sort(task.peak_rss_bytes), css="peak"),
            cell(format_size(task.peak_above_start_bytes), _sort(task.peak_above_start_bytes)),
            cell(format_size(task.tree_peak_above_start_bytes), _sort(task.tree_peak_above_start_bytes)),
            cell(
                format_size(task.needs_above_start_bytes),
                _sort(task.needs_above_start_bytes),
                tip=task.needs_note or "no leaf memory cgroup for this task",
            ),
            cell(
                format_size(task.page_cache_above_start_bytes),
                _sort(task.page_cache_above_start_bytes),
                tip="page cache its tree held above its start: the kernel reclaims it before it kills",
            ),
            _peak_cell(task),
            cell(f"{task.seconds:.2f}" if task.seconds is not None else "-", _sort(task.seconds)),
            _profile_cell(task),
            cell(task.exception or "", tip=task.exception or ""),
        ]
        for index, (task, depth) in enumerate(tree, 1)
    ]
    attrs = [
        f'data-task-id="{attr(task.id)}" data-depth="{depth}"'
        + (f' data-started-by="{attr(starters[task.id].id)}"' if task.id in starters else "")
        for task, depth in tree
    ]
    return table(TASK_COLUMNS, rows, "tasks", numeric=NUMERIC_TASK_COLUMNS, row_attrs=attrs)


def _sort(value: float | None) -> float | str:
    return "" if value is None else value


def load_section(view: RunView) -> str:
    """LOAD RUNS: throughput and backlog over time. Drawn only when the record has a `load` section
    (written by `oomlab run --rate`); its figures as a table, its per-second series as lines."""
    if view.load is None:
        return ""
    load: LoadView = load_view(view.load)
    body = key_values(load.figures)
    for title, columns in load.charts:
        svg, colors = lines_svg(columns, load.rows, TIME_KEY, title)
        keys = "".join(
            f'<button type="button" class="legend-item" data-series="{attr(c)}" style="--c:{colors[c]}">'
            f"{escape(c)}</button>"
            for c in columns
        )
        body += f'<figure><div class="legend">{keys}</div>{svg}</figure>'
    if not load.charts:
        body += '<p class="note">the record has no per-second series to draw</p>'
    return section("Load: throughput and backlog over time", body, "load")


LARGEST_COLUMNS = [
    "#",
    "task id",
    "name",
    "label",
    "args",
    "outcome",
    "pid",
    "peak RSS",
    "above start",
    "queue wait",
    "run time",
]
KILLED_COLUMNS = ["task id", "name", "label", "args", "pid", "RSS at the kill", "run time", "exception"]


def _args_text(args: list) -> str:
    text = json.dumps(args, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


def _seconds_cell(value: float | None) -> Cell:
    return cell(seconds_text(value), _sort(value))


def _line_cells(task: TaskLine) -> list[Cell]:
    return [
        cell(task.id[:8], task.id, tip=task.id),
        cell(task.name),
        cell(task.label),
        cell(_args_text(task.args), tip=json.dumps(task.args, default=repr)),
    ]


def names_table(stream: StreamView) -> str:
    quantiles = ("min", "p50", "p90", "p95", "p99", "max")
    above = ("above start p50", "above start p95", "above start max")
    trees = ("tree max", "needs max")
    columns = ["name", "tasks", "succeeded", "failed", "killed", "exact peaks", *quantiles, *above, *trees, "failures"]
    rows = [
        [
            cell(figures.name),
            cell(figures.tasks, figures.tasks),
            *[cell(figures.outcomes.get(o, 0), figures.outcomes.get(o, 0)) for o in ("succeeded", "failed", "killed")],
            cell(figures.peaks["n"], figures.peaks["n"]),
            *[cell(format_size(figures.peaks[q]), _sort(figures.peaks[q])) for q in quantiles],
            *[cell(format_size(figures.above_start[q]), _sort(figures.above_start[q])) for q in ("p50", "p95", "max")],
            cell(format_size(figures.tree_max), _sort(figures.tree_max)),
            cell(format_size(figures.needs_max), _sort(figures.needs_max)),
            cell(", ".join(f"{kind} × {n}" for kind, n in sorted(figures.failures.items())) or "-"),
        ]
        for figures in stream.names
    ]
    return table(columns, rows, "task-names", numeric=columns[1:-1])


def peak_histograms(stream: StreamView) -> str:
    figures = []
    for named in stream.names:
        if not named.bins:
            continue
        columns = [
            Column(
                b.low, b.high, b.count, f"{named.name}\n{format_size(b.low)} - {format_size(b.high)}: {b.count} task(s)"
            )
            for b in named.bins
        ]
        title = f"exact peaks of {named.name}: {named.peaks['n']} tasks"
        figures.append(
            f'<figure data-task-name="{attr(named.name)}"><figcaption>{escape(title)}</figcaption>'
            f"{histogram_svg(columns, title)}</figure>"
        )
    return "".join(figures) or '<p class="note">no task of this run has an exact peak</p>'


def largest_table(stream: StreamView) -> str:
    rows = [
        [
            cell(index, index),
            *_line_cells(task),
            cell(task.outcome, css=f"outcome outcome-{task.outcome}"),
            cell(task.pid, _sort(task.pid)),
            cell(format_size(task.peak_rss_bytes), _sort(task.peak_rss_bytes), css="peak", tip="exact (VmHWM)"),
            cell(format_size(task.peak_above_start_bytes), _sort(task.peak_above_start_bytes)),
            _seconds_cell(task.queue_wait_s),
            _seconds_cell(task.run_time_s),
        ]
        for index, task in enumerate(stream.largest, 1)
    ]
    attrs = [f'data-task-id="{attr(task.id)}"' for task in stream.largest]
    numeric = ("#", "pid", "peak RSS", "above start", "queue wait", "run time")
    return table(LARGEST_COLUMNS, rows, "largest-tasks", numeric=numeric, row_attrs=attrs)


def killed_table(stream: StreamView) -> str:
    if not stream.killed_count:
        return '<p class="note">no task was killed</p>'
    rows = [
        [
            *_line_cells(task),
            cell(task.pid, _sort(task.pid)),
            cell(
                format_size(task.peak_rss_bytes),
                _sort(task.peak_rss_bytes),
                tip="the kernel's RSS at the kill, not exact",
            ),
            _seconds_cell(task.run_time_s),
            cell(task.exception or "", tip=task.exception or ""),
        ]
        for task in stream.killed
    ]
    attrs = [f'data-task-id="{attr(task.id)}"' for task in stream.killed]
    shown = f"the first {len(stream.killed)} of " if len(stream.killed) < stream.killed_count else ""
    note = f'<p class="note">{shown}{stream.killed_count} killed task(s)</p>'
    return note + table(
        KILLED_COLUMNS, rows, "killed-tasks", numeric=("pid", "RSS at the kill", "run time"), row_attrs=attrs
    )


def stream_sections(stream: StreamView) -> str:
    """A load run's tasks, each read once from tasks.jsonl: per name the exact peak distribution, the
    largest tasks with their exact peaks, the killed ones."""
    note = f'<p class="status-bad stream-note">{escape(stream.note)}</p>' if stream.note and stream.malformed else ""
    note += f'<p class="note stream-note">{escape(stream.note)}</p>' if stream.note and not stream.malformed else ""
    return "".join(
        [
            section(
                "Tasks: exact peaks per task name",
                note + names_table(stream) + peak_histograms(stream),
                "stream",
                f"{stream.tasks} tasks read from tasks.jsonl (one line per task). Peaks are exact (VmHWM reset at "
                "prerun); every figure is a value really measured. Hover a column for its count.",
            ),
            section(
                f"The {len(stream.largest)} largest tasks",
                largest_table(stream),
                "largest",
                "By exact peak, largest first. Click a column to sort.",
            ),
            section("Killed tasks", killed_table(stream), "killed", "RSS at the kill is the kernel's figure."),
        ]
    )


def environment(view: RunView) -> str:
    pairs = [("schema", view.schema), *flatten(view.environment)]
    settings = [(k, v) for k, v in flatten(view.config) if k not in ("results_dir",)]
    return (
        '<div class="grid-2"><div><h3>machine</h3>'
        + key_values(pairs)
        + "</div><div><h3>configuration</h3>"
        + key_values(settings)
        + "</div></div>"
    )


def run_sections(view: RunView, series: list[Series], stream: StreamView | None = None) -> list[str]:
    """`stream`: a load run's tasks from tasks.jsonl, drawn in place of the (empty) task table."""
    tasks = (
        stream_sections(stream)
        if stream is not None
        else section(
            "Tasks",
            tasks_table(view),
            "task-table",
            "Each task started by a task (a chord's parts and callback, a task sent from a task) is right under "
            "the task that started it. Click a column to sort; # gives that order back.",
        )
    )
    return [
        section("Summary", headline(view), "summary"),
        section("Findings", bullet_list(view.findings, "findings"), "findings"),
        section(
            "Memory over time",
            timeline_figure(view, series, link_flamegraphs=True),
            "timeline",
            "Group usage and each process's RSS (sampled) against the limit; below, each task's span on its "
            "process, then each task that started tasks with those it started, on lanes of their own. Hover a span for its exact peak (a profiled task's span opens its flame graph), a red marker for a kill and its detector latencies; "
            "click a legend entry to hide a line.",
        ),
        section(
            "OOM kills",
            kills_table(view),
            "kill-table",
            "Latencies are seconds after the kernel's own kill time, per detector.",
        ),
        load_section(view),
        tasks,
        section("Environment", environment(view), "environment"),
    ]
