"""What a run's HTML report shows, extracted from the saved record alone (pure: no I/O, no clock).

run.json is read as plain JSON through `adapt` and the small per-item readers below it: they are
the only places that know the record's key names, so a key renamed by a new schema is a one-line
fix here and the page builders never see it. A load run's section and a task's profile are read
typed and checked (oomlab.record.load, oomlab.record.profile), as every other reader of them does.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from oomlab.errors import BadInput
from oomlab.record.digest import TaskDigest
from oomlab.record.exact_counts import ExactCounts
from oomlab.record.files import csv_curves, envelope
from oomlab.record.load import LoadSection, Quantiles
from oomlab.record.profile import TaskProfile
from oomlab.record.stream import StreamCheck, TaskLine
from oomlab.record.typed_json import ShapeError, from_json
from oomlab.run.load.stats import LATENCIES

SECRET_IN_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]+)@", re.I)


def scrub(value: Any) -> Any:
    """The value with every password in a URL replaced: a report travels further than a record."""
    if isinstance(value, str):
        return SECRET_IN_URL.sub(lambda m: f"{m['scheme']}{m['user']}:***@", value)
    if isinstance(value, dict):
        return {key: scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(item) for item in value]
    return value


@dataclass
class Span:
    """One execution of a task in one process, in seconds since the run started."""

    pid: int
    start_s: float
    end_s: float
    killed: bool
    peak_rss_bytes: int | None


@dataclass
class TaskView:
    id: str
    name: str
    label: str
    outcome: str
    pid: int | None
    attempts: int
    start_rss_bytes: int | None
    peak_rss_bytes: int | None
    peak_above_start_bytes: int | None
    peak_is_exact: bool
    traced_peak_bytes: int | None
    exception: str | None
    spans: list[Span] = field(default_factory=list)
    tree_peak_above_start_bytes: int | None = None
    needs_above_start_bytes: int | None = None  # unreclaimable: what a limit must hold (sampled)
    page_cache_above_start_bytes: int | None = None
    needs_note: str | None = None
    flamegraph: str | None = None  # memray's page for a profiled task, relative to the run directory
    # Celery's links: the task that sent it, the workflow's first task, its group or chord
    parent_id: str | None = None
    root_id: str | None = None
    group_id: str | None = None
    sent_by: str = "run"  # "worker": the worker sent it itself (a chord's part, a task sent from a task)

    @property
    def seconds(self) -> float | None:
        """Wall time of its executions together (a killed one counts up to the kill)."""
        return sum(span.end_s - span.start_s for span in self.spans) if self.spans else None


@dataclass
class KillView:
    pid: int
    role: str
    task_id: str | None
    task_name: str | None
    cause: str
    at_s: float
    time_source: str
    rss_bytes: int | None
    detected: dict[str, float]  # detector -> seconds after the kernel's kill
    kernel_message: str | None


@dataclass
class ProcessView:
    pid: int
    role: str


@dataclass
class RunView:
    """Everything a page about one run needs, with times relative to the run's start."""

    run_id: str
    schema: str
    scenario: str
    variant: str
    status: str
    message: str | None
    limit_bytes: int | None
    pool: str | None
    concurrency: int | None
    oom_scope: str | None
    duration_s: float
    started_mono: float
    tasks: list[TaskView]
    kills: list[KillView]
    processes: list[ProcessView]
    findings: list[str]
    summary: dict[str, Any]
    environment: dict[str, Any]
    config: dict[str, Any]
    load: LoadSection | None

    @property
    def task_count(self) -> int:
        """The tasks the run sent: its records, or a load run's (in tasks.jsonl) from its summary."""
        return len(self.tasks) or int(self.summary.get("tasks") or 0)


def adapt(raw: dict[str, Any]) -> RunView:
    """The one place run.json's top-level keys are read."""
    t0 = float(raw.get("started_mono") or 0.0)
    ended = raw.get("ended_mono")
    config = raw.get("config") or {}
    summary = raw.get("summary") or {}
    kills = [_kill(item, t0) for item in raw.get("kills") or []]
    return RunView(
        run_id=str(raw.get("run_id", "?")),
        schema=str(raw.get("schema", "?")),
        scenario=str(config.get("scenario", "?")),
        variant=str(config.get("variant", "")),
        status=str(raw.get("status", "?")),
        message=raw.get("message"),
        limit_bytes=config.get("memory_bytes") or (raw.get("group") or {}).get("limit_bytes"),
        pool=config.get("pool"),
        concurrency=config.get("concurrency"),
        oom_scope=config.get("oom_scope"),
        duration_s=(float(ended) - t0) if ended is not None else 0.0,
        started_mono=t0,
        tasks=[_task(item, t0, kills, ended) for item in raw.get("tasks") or []],
        kills=kills,
        processes=[ProcessView(int(p["pid"]), str(p.get("role", "child"))) for p in raw.get("processes") or []],
        # a load run's own findings (could not keep up, kills per 1,000, the soak) beside the run's
        findings=[str(f) for f in [*(summary.get("findings") or []), *((raw.get("load") or {}).get("findings") or [])]],
        summary=summary,
        environment=scrub(raw.get("environment") or {}),
        config=scrub(config),
        load=read_load(raw.get("load")),
    )


def _kill(raw: dict[str, Any], t0: float) -> KillView:
    return KillView(
        pid=int(raw["pid"]),
        role=str(raw.get("role", "?")),
        task_id=raw.get("task_id"),
        task_name=raw.get("task_name"),
        cause=str(raw.get("cause", "oom")),
        at_s=float(raw["kernel_time_mono"]) - t0,
        time_source=str(raw.get("kernel_time_source", "?")),
        rss_bytes=raw.get("rss_bytes"),
        detected={str(k): float(v) for k, v in (raw.get("detected") or {}).items() if v is not None},
        kernel_message=raw.get("kernel_message"),
    )


def _task(raw: dict[str, Any], t0: float, kills: list[KillView], ended_mono: float | None) -> TaskView:
    spans = []
    for run in raw.get("executions") or []:
        start = float(run["started_mono"]) - t0
        if run.get("finished_mono") is not None:
            end = float(run["finished_mono"]) - t0
        else:  # no postrun: it ended at its process's kill, or was still running when the run ended
            kill = next((k.at_s for k in kills if k.pid == run["pid"] and k.at_s >= start), None)
            end = kill if kill is not None else (float(ended_mono) - t0 if ended_mono is not None else start)
        spans.append(Span(int(run["pid"]), start, max(end, start), bool(run.get("killed")), run.get("peak_rss_bytes")))
    return TaskView(
        id=str(raw.get("id", "?")),
        name=str(raw.get("name", "?")),
        label=str(raw.get("label") or ""),
        outcome=str(raw.get("outcome", "?")),
        pid=raw.get("pid"),
        attempts=int(raw.get("attempts") or 0),
        start_rss_bytes=raw.get("start_rss_bytes"),
        peak_rss_bytes=raw.get("peak_rss_bytes"),
        peak_above_start_bytes=raw.get("peak_above_start_bytes"),
        peak_is_exact=bool(raw.get("peak_is_exact")),
        traced_peak_bytes=raw.get("traced_peak_bytes"),
        exception=raw.get("exception"),
        spans=spans,
        tree_peak_above_start_bytes=raw.get("tree_peak_above_start_bytes"),
        needs_above_start_bytes=raw.get("needs_above_start_bytes"),
        page_cache_above_start_bytes=raw.get("page_cache_above_start_bytes"),
        needs_note=raw.get("needs_note"),
        flamegraph=_relative_page(profile.flamegraph) if (profile := read_profile(raw.get("profile"))) else None,
        parent_id=_text_or_none(raw.get("parent_id")),
        root_id=_text_or_none(raw.get("root_id")),
        group_id=_text_or_none(raw.get("group_id")),
        sent_by=str(raw.get("sent_by") or "run"),
    )


def _text_or_none(value: object) -> str | None:
    return str(value) if value else None


def read_profile(raw: Any) -> TaskProfile | None:
    """A task's `profile` (--profile), checked; BadInput when it does not fit."""
    if raw is None:
        return None
    try:
        return from_json(TaskProfile, raw, "profile")
    except ShapeError as error:
        raise BadInput(f"the record's task profile does not fit: {error}") from None


def _relative_page(path: object) -> str | None:
    """A link target only when it is a plain path inside the run directory (a record is data: no
    scheme such as javascript:, no absolute path, no way out with ..)."""
    if not isinstance(path, str) or not path or ":" in path or path.startswith(("/", "\\")):
        return None
    return None if ".." in path.replace("\\", "/").split("/") else path


# --- tasks started by tasks ------------------------------------------------------------------


def started_by(tasks: list[TaskView]) -> dict[str, str]:
    """Each task another task of the run started -> that task's id: its parent when the run has it,
    else its workflow's first task (a chord's callback sent by a part the run does not hold)."""
    ids = {task.id for task in tasks}
    found: dict[str, str] = {}
    for task in tasks:
        starter = next((i for i in (task.parent_id, task.root_id) if i and i != task.id and i in ids), None)
        if starter is not None:
            found[task.id] = starter
    return found


def task_tree(tasks: list[TaskView]) -> list[tuple[TaskView, int]]:
    """Every task once, each right under the task that started it (depth first, siblings in the run's
    order), with its depth: 0 for a task the run sent. A loop of links (a record edited by hand) is
    cut where it closes, so no task is lost or repeated."""
    parent = started_by(tasks)
    children: dict[str, list[TaskView]] = {}
    for task in tasks:
        if task.id in parent:
            children.setdefault(parent[task.id], []).append(task)
    order: list[tuple[TaskView, int]] = []
    placed: set[int] = set()  # by object: a record holding an id twice keeps both rows
    for first in [*(t for t in tasks if t.id not in parent), *tasks]:  # then whatever a loop left out
        stack = [(first, 0)]
        while stack:
            task, depth = stack.pop()
            if id(task) in placed:
                continue
            placed.add(id(task))
            order.append((task, depth))
            stack.extend((child, depth + 1) for child in reversed(children.get(task.id, [])))
    return order


def task_groups(tasks: list[TaskView]) -> list[list[tuple[TaskView, int]]]:
    """The trees of tasks that started other tasks (a task with its chord, its callback, ...), each
    in `task_tree` order; a task that started nothing is in none."""
    groups: list[list[tuple[TaskView, int]]] = []
    for task, depth in task_tree(tasks):
        if depth == 0:
            groups.append([])
        groups[-1].append((task, depth))
    return [group for group in groups if len(group) > 1]


# --- the sampler's series -------------------------------------------------------------------


@dataclass
class Series:
    key: str  # stable id for the legend toggle: "group" or "pid-1234"
    label: str
    points: list[tuple[float, float]]  # (seconds since start, bytes)


def downsample(points: list[tuple[float, float]], buckets: int = 500) -> list[tuple[float, float]]:
    """At most ~2 points per time bucket (run_files.Envelope: the sampled extremes kept)."""
    if len(points) <= 2 * buckets:
        return points
    return envelope(points, points[0][0], points[-1][0], buckets)


def memory_series(view: RunView, run_dir: str, buckets: int = 500) -> list[Series]:
    """The group's usage first, then each process's RSS, from group.csv and samples.csv (read in
    memory of the picture: run_files.csv_curves)."""
    t0 = view.started_mono
    roles = {p.pid: p.role for p in view.processes}
    usage = csv_curves(os.path.join(run_dir, "group.csv"), "t_mono", "usage_bytes", buckets=buckets).get("", [])
    by_pid = csv_curves(os.path.join(run_dir, "samples.csv"), "t_mono", "rss_bytes", key="pid", buckets=buckets)
    series = [Series("group", "group usage", _from(usage, t0))] if usage else []
    for pid, points in sorted(by_pid.items(), key=lambda item: (roles.get(int(item[0])) != "main", int(item[0]))):
        series.append(Series(f"pid-{pid}", f"{roles.get(int(pid), 'child')} {pid}", _from(points, t0)))
    return series


def _from(points: list[tuple[float, float]], t0: float) -> list[tuple[float, float]]:
    return [(t - t0, value) for t, value in points]


def lanes(view: RunView) -> list[int]:
    """The processes that ran a task, in the order they first did."""
    order: dict[int, float] = {}
    for task in view.tasks:
        for span in task.spans:
            order[span.pid] = min(order.get(span.pid, span.start_s), span.start_s)
    return sorted(order, key=lambda pid: order[pid])


# --- load runs (the record's typed `load` section, oomlab.record.load) ----------------------

TIME_KEY = "t_s"


@dataclass
class LoadView:
    figures: list[tuple[str, object]]  # the section's headline figures, labelled
    charts: list[tuple[str, list[str]]]  # (title, columns) drawn over `rows`
    rows: list[dict[str, float]]  # one point of one series each: {t_s, column}


def read_load(raw: Any) -> LoadSection | None:
    """run.json's `load` section, checked (None for a run that is not a load run); BadInput when it
    does not fit."""
    if not raw:
        return None
    try:
        return from_json(LoadSection, raw)
    except ShapeError as error:
        raise BadInput(f"the record's load section does not fit: {error}") from None


def load_view(load: LoadSection) -> LoadView:
    """The section's figures, and its per-second series as lines: rates (offered, achieved) and the
    backlog (in flight, waiting in the queue)."""
    latency = load.latency
    figures: list[tuple[str, object]] = [
        ("calls from", load.calls_from or None),
        ("tasks sent", load.counts.sent),
        ("succeeded / failed / killed", f"{load.counts.succeeded} / {load.counts.failed} / {load.counts.killed}"),
        ("asked (tasks/s)", load.asked_per_s),
        ("offered (tasks/s)", load.offered_per_s),
        ("achieved (tasks/s)", load.achieved_per_s),
        *(
            (f"{name.replace('_', ' ')} p50 / p95 / p99 / max (s)", _quantiles(getattr(latency, name)))
            for name in LATENCIES
        ),
        ("OOM kills", load.oom_kills),
        ("OOM kills per 1,000 tasks", load.oom_kills_per_1000_tasks),
    ]
    if load.schedule is not None:
        figures.append(("send schedule error (%)", load.schedule.offered_error_percent))
    if load.recycling is not None:
        figures.append(
            ("children recycled / lost", f"{load.recycling.children_recycled} / {load.recycling.children_lost}")
        )
    if load.soak is not None:
        figures.append(("growth per 1,000 tasks per child (bytes)", load.soak.growth_per_1000_tasks_per_child_bytes))
        if load.soak.fit:
            figures.append(("growth: what the slope rests on", load.soak.fit))
    if load.harness is not None:
        figures.append(("oomlab's own peak RSS (bytes)", load.harness.oomlab_peak_rss_bytes))
    series = load.series
    named = {
        "offered /s": series.offered,
        "achieved /s": series.achieved,
        "in flight": series.in_flight,
        "waiting in the queue": series.queue_depth,
    }
    rows = [
        {TIME_KEY: index * points.width_s, name: float(value)}
        for name, points in named.items()
        for index, value in enumerate(points.values)
    ]
    charts = [
        ("throughput over time", ["offered /s", "achieved /s"]),
        ("backlog over time", ["in flight", "waiting in the queue"]),
    ]
    return LoadView(
        figures, [(title, columns) for title, columns in charts if any(c in row for row in rows for c in columns)], rows
    )


def _quantiles(figures: Quantiles) -> str:
    return " / ".join("-" if v is None else f"{v:.4g}" for v in (figures.p50, figures.p95, figures.p99, figures.max))


# --- a load run's tasks (tasks.jsonl, folded in one pass: oomlab.record.digest) --------------

PEAK_BINS = 30


@dataclass
class PeakBin:
    low: int  # bytes, inclusive
    high: int  # bytes, exclusive
    count: int


@dataclass
class NameFigures:
    """One task name's tasks: outcomes, exact peaks (every figure a value really measured)."""

    name: str
    tasks: int
    outcomes: dict[str, int]
    peaks: dict[str, int | None]  # n, min, p50, p90, p95, p99, max
    above_start: dict[str, int | None]  # n, p50, p95, max
    bins: list[PeakBin]
    tree_max: int | None = None  # the largest task-tree peak above start
    needs_max: int | None = None  # the largest unreclaimable growth above start (sampled)
    failures: dict[str, int] = field(default_factory=dict)  # failed tasks by exception type


@dataclass
class StreamView:
    tasks: int
    names: list[NameFigures]
    largest: list[TaskLine]  # by exact peak, largest first
    killed: list[TaskLine]  # the first few
    killed_count: int
    note: str | None  # malformed lines, or a half-written last line
    malformed: int


def peak_bins(counts: dict[int, int], bins: int = PEAK_BINS) -> list[PeakBin]:
    """Exact peaks counted into at most `bins` equal ranges from the smallest to the largest (a page
    wide at least), so the distribution's shape shows however many tasks ran."""
    if not counts:
        return []
    low, high = min(counts), max(counts)
    width = max(4096, -(-(high - low + 1) // bins))
    found = [0] * (((high - low) // width) + 1)
    for value, count in counts.items():
        found[(value - low) // width] += count
    return [PeakBin(low + i * width, low + (i + 1) * width, count) for i, count in enumerate(found)]


def _figures(counts: ExactCounts, quantiles: tuple[tuple[str, float], ...]) -> dict[str, int | None]:
    if not counts.n:
        return {"n": 0, **dict.fromkeys(name for name, _ in quantiles), "max": None}
    values = counts.quantiles(*(q for _, q in quantiles))
    return {
        "n": counts.n,
        **{name: value for (name, _), value in zip(quantiles, values, strict=True)},
        "max": counts.max,
    }


def stream_view(digest: TaskDigest, check: StreamCheck) -> StreamView:
    names = [
        NameFigures(
            name=name,
            tasks=held.tasks,
            outcomes=dict(held.outcomes),
            peaks={
                "min": held.peaks.min,
                **_figures(held.peaks, (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99))),
            },
            above_start=_figures(held.above_start, (("p50", 0.5), ("p95", 0.95))),
            bins=peak_bins(held.peaks.counts),
            tree_max=held.tree_max,
            needs_max=held.needs.max if held.needs.n else None,
            failures=dict(held.failures),
        )
        for name, held in sorted(digest.by_name.items())
    ]
    return StreamView(
        digest.tasks, names, digest.largest, digest.killed, digest.killed_count, check.note(), check.malformed
    )
