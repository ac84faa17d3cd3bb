"""The profiles of a run read into its record: each profiled task's sites at its peak (or at the
kill), what memray could not see, memray's measured cost, and a flame graph per capture."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field, replace

from oomlab.config.sizes import format_size
from oomlab.observe.profiling.read import Capture, read_windows, render_flamegraph
from oomlab.probe.events import CHILD_SHUTDOWN, ProbeLine
from oomlab.record.profile import ChildProcesses, ProfileCost, RunProfile, TaskProfile
from oomlab.record.schema import Execution, KillRecord, RunRecord, TaskRecord

MAX_FLAMEGRAPHS = 20  # the largest captures get one (about 4.5 MB and half a second each)
UNSEEN_FRACTION = 0.5  # memray seeing less than this share of a task's growth is worth a sentence
UNSEEN_MIN_BYTES = 8 * 2**20


READ_EVERY_S = 1.0  # a live child's capture is read again at most this often while its tasks end...
READ_SHARE = 20  # ...and no more often than 20 times as long as its last read took (<= 5 % of a core)


@dataclass
class ProfileCollector:
    run_dir: str
    names: tuple[str, ...]
    captures: dict[tuple[str, int], Capture] = field(default_factory=dict)  # (child's capture, window)
    flamegraphs: dict[tuple[str, int], str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    read_at: dict[str, tuple[float, float]] = field(default_factory=dict)  # path -> (when, seconds it took)

    def collect(self, record: RunRecord, probe: list[ProbeLine], wall_offset: float, final: bool = False) -> None:
        """Each chosen task's window, read from its pool child's capture once the execution is final.
        A capture is read in one pass for all its windows: at once when its child has gone (the
        capture is complete) or the run is final, otherwise at most every READ_EVERY_S."""
        starts = [r for r in probe if r["ev"] == "profile_start"]
        ends = {(r["path"], r.get("window")): r for r in probe if r["ev"] == "profile_end"}
        gone = {r["pid"] for r in probe if r["ev"] == CHILD_SHUTDOWN}  # its capture is complete
        kills = {(k.task_id, k.pid): k for k in record.kills}
        found: list[tuple[TaskRecord, Execution, ProbeLine]] = []
        due: set[str] = set()
        for task in record.tasks:
            for start in (s for s in starts if s["task_id"] == task.id):
                execution = _execution_of(task, start)
                key = (start["path"], start.get("window", -1))
                if execution is None or not (key in ends or execution.killed):
                    continue  # still running: read once final
                found.append((task, execution, start))
                if self._stale(key, execution.killed) and start["path"] not in self.errors:
                    whole = final or execution.killed or start["pid"] in gone  # the capture is complete
                    if whole or self._may_read(start["path"]):
                        due.add(start["path"])
        for path in sorted(due):
            self._read(path)
        by_task: dict[str, list[TaskProfile]] = {}
        for task, execution, start in found:
            key = (start["path"], start.get("window", -1))
            capture = self.captures.get(key)
            if capture is None:
                continue
            kill = kills.get((task.id, execution.pid)) if execution.killed else None
            profile = _profile(self.run_dir, capture, execution, start, ends.get(key), kill, wall_offset)
            by_task.setdefault(task.id, []).append(replace(profile, flamegraph=self.flamegraphs.get(key)))
        for task in record.tasks:
            profiles = by_task.get(task.id)
            if profiles:
                task.profile = replace(profiles[-1], executions=len(profiles))
                task.top_allocations = list(profiles[-1].sites)
        record.summary.profile = RunProfile(
            tasks=list(self.names), captures=len(self.captures), cost=cost(probe), read_errors=dict(self.errors)
        )

    def _stale(self, key: tuple[str, int], killed: bool) -> bool:
        """Not read yet, or read while the task still ran (a window without its end mark)."""
        capture = self.captures.get(key)
        return capture is None or (not killed and capture.view != "high-water mark")

    def _may_read(self, path: str) -> bool:
        last = self.read_at.get(path)
        return last is None or time.monotonic() - last[0] >= max(READ_EVERY_S, READ_SHARE * last[1])

    def _read(self, path: str) -> None:
        began = time.monotonic()
        try:
            windows = read_windows(path)
        except Exception as exc:  # memray's own reader failed: say so on the task, keep the run
            self.errors[path] = f"{type(exc).__name__}: {exc}"
            return
        finally:
            self.read_at[path] = (time.monotonic(), time.monotonic() - began)
        self.captures.update({(path, number): capture for number, capture in windows.items()})
        self._keep_records()

    def _keep_records(self) -> None:
        """The held records stay only for the captures a flame graph will be drawn for."""
        largest = sorted(self.captures, key=lambda k: self.captures[k].total_bytes, reverse=True)
        for key in largest[MAX_FLAMEGRAPHS:]:
            if self.captures[key].records:
                self.captures[key] = replace(self.captures[key], records=[], snapshots=[])

    def render_flamegraphs(self, probe: list[ProbeLine]) -> None:
        """memray's own HTML flame graph per task window, largest first, drawn by memray's reporter
        from what the task held at its high-water mark (a task that finished: the same moment as its
        sites) or at the last record (one that was killed: the leaks view, what the OOM killer counted)."""
        tasks = {(r["path"], r.get("window", -1)): r for r in probe if r["ev"] == "profile_start"}
        largest = sorted(self.captures, key=lambda k: self.captures[k].total_bytes, reverse=True)[:MAX_FLAMEGRAPHS]
        for key in largest:
            capture, start = self.captures[key], tasks.get(key)
            if key in self.flamegraphs or start is None or not capture.records:
                continue
            html = os.path.join(os.path.dirname(capture.path), f"{start['task_id']}.{start['pid']}.{key[1]}.html")
            try:
                render_flamegraph(capture, html)
            except Exception as exc:  # memray's reporter: say so, keep the run
                self.errors[f"{capture.path}#{key[1]}"] = f"memray flamegraph: {type(exc).__name__}: {exc}"
                continue
            self.flamegraphs[key] = os.path.relpath(html, self.run_dir)


def _execution_of(task: TaskRecord, start: ProbeLine) -> Execution | None:
    """The execution a window belongs to: same process, the latest started before the mark."""
    candidates = [e for e in task.executions if e.pid == start["pid"] and e.started_mono <= start["t"]]
    return max(candidates, key=lambda e: e.started_mono) if candidates else None


def _profile(
    run_dir: str,
    capture: Capture,
    execution: Execution,
    start: ProbeLine,
    end: ProbeLine | None,
    kill: KillRecord | None,
    wall_offset: float,
) -> TaskProfile:
    peak = kill.rss_bytes if kill is not None else execution.peak_rss_bytes
    growth = peak - execution.start_rss_bytes if peak is not None and execution.start_rss_bytes is not None else None
    children = _children(start, end)
    gap = None
    if kill is not None and capture.last_snapshot_wall is not None:
        # memray's RSS snapshots run every 10 ms; its allocation records are written as they happen
        gap = round(kill.kernel_time_mono + wall_offset - capture.last_snapshot_wall, 4)
    return TaskProfile(
        capture=os.path.relpath(capture.path, run_dir),
        view=capture.view,
        held_bytes=capture.total_bytes,
        memray_peak_bytes=capture.peak_bytes,
        task_growth_bytes=growth,
        killed_at_bytes=kill.rss_bytes if kill is not None else None,
        children=children,
        overhead_s=end.get("overhead_s") if end else None,
        sites=list(capture.sites),
        last_snapshot_before_kill_s=gap,
        note=unseen_note(capture.total_bytes, growth, children)
        or untouched_note(capture.total_bytes, growth, kill is not None),
        window=capture.window,
    )


def _children(start: ProbeLine, end: ProbeLine | None) -> ChildProcesses | None:
    """Child processes the task ran and waited for (their page faults and CPU time rose), and the
    largest one's peak when it set a new maximum for this process (ru_maxrss keeps only the largest)."""
    if end is None:
        return None
    before, after = start.get("children") or {}, end.get("children") or {}
    ran = after.get("faults", 0) > before.get("faults", 0) or after.get("cpu", 0) > before.get("cpu", 0)
    grew = after.get("maxrss", 0) > before.get("maxrss", 0)
    return ChildProcesses(ran=ran, largest_peak_bytes=after["maxrss"] if grew else None)


def unseen_note(seen: int, growth: int | None, children: ChildProcesses | None) -> str | None:
    """A sentence when memray's view cannot be the whole story, rather than a short profile."""
    if children is not None and children.ran:
        largest = children.largest_peak_bytes
        size = f" (the largest peaked at {format_size(largest)})" if largest else ""
        return (
            f"memray saw {format_size(seen)} held in the task's own process; the task also ran child "
            f"processes{size}, whose memory memray cannot see (a program that is not this Python process)"
        )
    if growth is not None and growth >= UNSEEN_MIN_BYTES and seen < growth * UNSEEN_FRACTION:
        return (
            f"memray saw {format_size(seen)} of the task's {format_size(growth)} growth: the rest was not "
            f"allocated through this process's allocators while it was tracked (a subprocess or native "
            f"program, a mapped file, or memory the allocator kept from before the task)"
        )
    return None


def untouched_note(seen: int, growth: int | None, killed: bool) -> str | None:
    """memray counts the bytes asked for, RSS the pages touched: a large allocation being filled when
    the kernel struck is held in full by memray and only partly resident."""
    if growth is None or seen < growth + UNSEEN_MIN_BYTES:
        return None
    when = "when the kernel killed it" if killed else "at its peak"
    return (
        f"memray counts the bytes the task asked for ({format_size(seen)}); its RSS had grown by "
        f"{format_size(growth)} {when}: not every page of its allocations was touched yet"
    )


def cost(probe: list[ProbeLine]) -> ProfileCost | None:
    """memray's cost per task, measured: a no-op task body bare and tracked with a window's two marks
    in one pool child (median of each), the child's one tracker start, and the marks' time in the
    real tasks."""
    calibration = next((r for r in probe if r["ev"] == "profile_cost"), None)
    marks = [r["overhead_s"] for r in probe if r["ev"] == "profile_end" and r.get("overhead_s") is not None]
    child = next((r for r in probe if r["ev"] == "profile_child"), None)
    if calibration is None and not marks:
        return None
    figures = ProfileCost()
    if calibration is not None:
        bare, tracked = statistics.median(calibration["bare_s"]), statistics.median(calibration["tracked_s"])
        figures = replace(
            figures, noop_runs=calibration["runs"], noop_bare_s=bare, noop_tracked_s=tracked, per_task_s=tracked - bare
        )
        growth = [calibration.get("bare_peak_growth") or [], calibration.get("tracked_peak_growth") or []]
        if all(growth) and None not in growth[0] + growth[1]:
            figures = replace(
                figures,
                setup_peak_bytes=calibration.get("setup_peak_growth"),  # the tracker's start, before any task
                per_task_peak_bytes=statistics.median(growth[1]) - statistics.median(growth[0]),
                tracker_start_s=calibration.get("start_s"),
            )
    if child is not None:
        figures = replace(figures, native_traces=bool(child.get("native")))
    if marks:
        figures = replace(figures, marks_median_s=statistics.median(marks), marks_n=len(marks))
    return figures
