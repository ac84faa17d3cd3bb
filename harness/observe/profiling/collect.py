"""The profiles of a run read into its record: each profiled task's sites at its peak (or at the
kill), what memray could not see, memray's measured cost, and a flame graph per capture."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field, replace

from oomlab.config.sizes import format_size
from oomlab.observe.profiling.read import Capture, read_capture
from oomlab.probe.events import ProbeLine
from oomlab.record.profile import ChildProcesses, ProfileCost, RunProfile, TaskProfile
from oomlab.record.schema import Execution, KillRecord, RunRecord, TaskRecord
from oomlab.trust import run_python

MAX_FLAMEGRAPHS = 20  # the largest captures get one (about 4.5 MB and half a second each)
UNSEEN_FRACTION = 0.5  # memray seeing less than this share of a task's growth is worth a sentence
UNSEEN_MIN_BYTES = 8 * 2**20


@dataclass
class ProfileCollector:
    run_dir: str
    names: tuple[str, ...]
    captures: dict[str, Capture] = field(default_factory=dict)  # read once the execution is final
    flamegraphs: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def collect(self, record: RunRecord, probe: list[ProbeLine], wall_offset: float) -> None:
        starts = [r for r in probe if r["ev"] == "profile_start"]
        ends = {r["path"]: r for r in probe if r["ev"] == "profile_end"}
        kills = {(k.task_id, k.pid): k for k in record.kills}
        for task in record.tasks:
            profiles = []
            for start in (s for s in starts if s["task_id"] == task.id):
                execution = _execution_of(task, start)
                if execution is None or not (start["path"] in ends or execution.killed):
                    continue  # still running, or its tracker still closing the capture: read once final
                kill = kills.get((task.id, execution.pid)) if execution.killed else None
                capture = self._capture(start["path"], execution.killed)
                if capture is not None:
                    profile = _profile(
                        self.run_dir, capture, execution, start, ends.get(start["path"]), kill, wall_offset
                    )
                    profiles.append(replace(profile, flamegraph=self.flamegraphs.get(start["path"])))
            if profiles:
                task.profile = replace(profiles[-1], executions=len(profiles))
                task.top_allocations = list(profiles[-1].sites)
        record.summary.profile = RunProfile(
            tasks=list(self.names), captures=len(self.captures), cost=cost(probe), read_errors=dict(self.errors)
        )

    def _capture(self, path: str, killed: bool) -> Capture | None:
        if path not in self.captures and path not in self.errors:
            try:
                self.captures[path] = read_capture(path, killed)
            except Exception as exc:  # memray's own reader failed: say so on the task, keep the run
                self.errors[path] = f"{type(exc).__name__}: {exc}"
        return self.captures.get(path)

    def render_flamegraphs(self) -> None:
        """memray's own HTML flame graph per capture, largest first: the high-water-mark view for a
        task that finished (the same moment as its sites), the leaks view (what was held at the last
        record) for one that was killed."""
        largest = sorted(self.captures.values(), key=lambda c: c.total_bytes, reverse=True)[:MAX_FLAMEGRAPHS]
        for capture in largest:
            html = capture.path[: -len(".bin")] + ".html"
            extra = ["--leaks"] if capture.view == "last record" else []
            # --no-web: memray's vendored d3/bootstrap inlined (about 4.5 MB), so it opens offline and in CI
            html, source = os.path.abspath(html), os.path.abspath(capture.path)  # it works in a directory of its own
            command = ["-m", "memray", "flamegraph", "-f", "--no-web", *extra, "-o", html, source]
            done = run_python(*command, capture_output=True, text=True, timeout=120)
            if done.returncode == 0:
                self.flamegraphs[capture.path] = os.path.relpath(html, self.run_dir)
            else:
                self.errors[capture.path] = f"memray flamegraph: {done.stderr.strip()[-300:]}"


def _execution_of(task: TaskRecord, start: ProbeLine) -> Execution | None:
    """The execution a capture belongs to: same process, the latest started before the tracker."""
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
    """memray's cost per task, measured: a no-op task body bare and inside a tracker in one pool
    child (median of each), and the tracker's start+stop time around the real tasks."""
    calibration = next((r for r in probe if r["ev"] == "profile_cost"), None)
    around = [r["overhead_s"] for r in probe if r["ev"] == "profile_end" and r.get("overhead_s") is not None]
    if calibration is None and not around:
        return None
    figures = ProfileCost()
    if calibration is not None:
        bare, tracked = statistics.median(calibration["bare_s"]), statistics.median(calibration["tracked_s"])
        figures = replace(
            figures, noop_runs=calibration["runs"], noop_bare_s=bare, noop_tracked_s=tracked, per_task_s=tracked - bare
        )
        growth = [calibration.get("bare_peak_growth") or [], calibration.get("tracked_peak_growth") or []]
        if all(len(g) > 1 for g in growth) and None not in growth[0] + growth[1]:
            # the first tracker in a process sets memray up; each pool child pays that as it starts
            figures = replace(
                figures,
                setup_peak_bytes=growth[1][0] - growth[0][0],
                per_task_peak_bytes=statistics.median(growth[1][1:]) - statistics.median(growth[0][1:]),
            )
    if around:
        figures = replace(figures, start_stop_median_s=statistics.median(around), start_stop_n=len(around))
    return figures
