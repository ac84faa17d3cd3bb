"""Outside the worker: every process in the group (re-read from the cgroup each tick, so replaced
children are caught), RSS at `rss_hz`, PSS/USS from smaps_rollup at `smaps_hz`, and the
group's usage and peak. Rows are appended to CSV once a second, so a killed run keeps them.
"""

from __future__ import annotations

import csv
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from oomlab.probe import procfs
from oomlab.probe.task_tree import memory_kinds, read_kinds, unreclaimable
from oomlab.trust import open_in_dir
from oomlab.worker.limits.base import LEAF_PREFIX, CgroupBackend

SAMPLE_COLUMNS = ["t_mono", "pid", "rss_bytes", "pss_bytes", "uss_bytes"]
GROUP_COLUMNS = ["t_mono", "usage_bytes", "peak_bytes", "processes", "anon_bytes", "file_bytes", "shmem_bytes"]


@dataclass
class PidStats:
    first_seen: float
    last_seen: float
    max_rss: int = 0
    last_rss: int | None = None
    max_pss: int | None = None
    max_uss: int | None = None
    command: str = ""
    gone_mono: float | None = None


@dataclass
class SamplerCost:
    """The sampler's own CPU time, split between RSS-only ticks and ticks that also read smaps."""

    ticks: int = 0
    process_samples: int = 0
    cpu_seconds: float = 0.0
    smaps_ticks: int = 0
    smaps_process_samples: int = 0
    smaps_cpu_seconds: float = 0.0

    def add(self, with_smaps: bool, processes: int, cpu: float) -> None:
        self.ticks += 1
        self.process_samples += processes
        self.cpu_seconds += cpu
        if with_smaps:
            self.smaps_ticks += 1
            self.smaps_process_samples += processes
            self.smaps_cpu_seconds += cpu

    def as_dict(self) -> dict[str, Any]:
        rss_ticks = self.ticks - self.smaps_ticks
        rss_samples = self.process_samples - self.smaps_process_samples
        rss_cpu = self.cpu_seconds - self.smaps_cpu_seconds

        def us(seconds: float, count: int) -> float | None:
            return round(seconds / count * 1e6, 1) if count else None

        return {
            "ticks": self.ticks,
            "process_samples": self.process_samples,
            "cpu_seconds": round(self.cpu_seconds, 4),
            "cpu_us_per_rss_tick": us(rss_cpu, rss_ticks),
            "cpu_us_per_rss_process_sample": us(rss_cpu, rss_samples),
            "cpu_us_per_smaps_process_sample": us(self.smaps_cpu_seconds, self.smaps_process_samples),
        }


@dataclass
class LeafSeries:
    """One pool child's leaf over time: its unreclaimable bytes (anon + shmem + kernel) and its page
    cache, kept only when either moved by LEAF_STEP_BYTES, so an idle leaf costs nothing."""

    t_mono: list[float] = field(default_factory=list)
    unreclaimable: list[int] = field(default_factory=list)
    file: list[int] = field(default_factory=list)

    def add(self, now: float, held: int, cache: int) -> None:
        if self.t_mono and (
            abs(held - self.unreclaimable[-1]) < LEAF_STEP_BYTES and abs(cache - self.file[-1]) < LEAF_STEP_BYTES
        ):
            return
        self.t_mono.append(now)
        self.unreclaimable.append(held)
        self.file.append(cache)

    def copy(self) -> LeafSeries:
        return LeafSeries(list(self.t_mono), list(self.unreclaimable), list(self.file))

    def highest(self, start: float, end: float) -> tuple[int, int] | None:
        """(unreclaimable, page cache) at their highest between `start` and `end`, the value held
        when the span began included."""
        held = cache = None
        for index, t in enumerate(self.t_mono):
            if t > end:
                break
            following = self.t_mono[index + 1] if index + 1 < len(self.t_mono) else float("inf")
            if following < start:
                continue
            held = max(held or 0, self.unreclaimable[index])
            cache = max(cache or 0, self.file[index])
        return None if held is None or cache is None else (held, cache)


LEAF_STEP_BYTES = 256 * 1024  # a leaf's change smaller than this is not kept
COMMAND_SETTLES_S = 0.5  # a process first seen between fork and exec shows its parent's command line
SMAPS_READS_PER_SECOND = 32  # PSS/USS reads per second across all processes (bench/sampler_cost.py)


class Sampler(threading.Thread):
    def __init__(
        self,
        group: CgroupBackend,
        run_dir: str,
        rss_hz: float = 100.0,
        smaps_hz: float = 2.0,
        on_new_pid: Callable[[int], None] | None = None,
    ):
        super().__init__(name="oomlab-sampler", daemon=True)
        self.group = group
        self.samples_path = os.path.join(run_dir, "samples.csv")
        self.group_path = os.path.join(run_dir, "group.csv")
        self.period = 1.0 / rss_hz
        # smaps_rollup walks page tables (~0.7 ms per 30 MiB process here): a few times a second, and
        # less often when there are many processes, so it reads at most SMAPS_READS_PER_SECOND of them
        self.rss_hz = rss_hz
        self.smaps_every = self.base_smaps_every = max(1, round(rss_hz / smaps_hz))
        self.on_new_pid = on_new_pid
        self.stats: dict[int, PidStats] = {}
        self.cost = SamplerCost()
        self.latest_usage: int | None = None
        self.latest_file_bytes: int | None = None  # page cache in that usage: the kernel reclaims it before a kill
        self.max_usage: int = 0
        # the most the processes' RSS ever added up to, and the group's real usage at that moment:
        # shared pages count once per process in the sum, once in the group
        self.max_sum_rss: int = 0
        self.usage_at_max_sum_rss: int | None = None
        self._rows: list[tuple[Any, ...]] = []
        self._group_rows: list[tuple[Any, ...]] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._headers_written = False
        self._files = procfs.OpenFiles()
        self._group_files = (group.file(group.usage_file), group.file(group.peak_file))
        self._stat_file = group.file("memory.stat")
        self.kinds_at_max_usage: dict[str, int] | None = None  # the group's anon/file/shmem at its highest sample
        self.kinds_max: dict[str, int] = {}  # each kind's highest sample
        self.leaves: dict[int, LeafSeries] = {}  # pool child pid -> its leaf's unreclaimable and cache

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=5)
        self.flush()
        self._files.close()

    def leaf_highest(self, pid: int, start: float, end: float) -> tuple[int, int] | None:
        """A task's leaf at its highest between `start` and `end` (LeafSeries.highest), and the points
        before `end` let go: a load run asks once per task as it ends, so its leaves stay as small as
        the tasks in flight (the next task in this child starts after `end`)."""
        with self._lock:
            series = self.leaves.get(pid)
            if series is None:
                return None
            highest = series.highest(start, end)
            held = sum(1 for t in series.t_mono if t <= end) - 1  # the point held at `end` stays
            if held > 0:
                del series.t_mono[:held], series.unreclaimable[:held], series.file[:held]
            return highest

    def leaf_snapshot(self) -> dict[int, LeafSeries]:
        with self._lock:
            return {pid: series.copy() for pid, series in self.leaves.items()}

    def snapshot(self) -> dict[int, PidStats]:
        with self._lock:
            return {pid: PidStats(**vars(stats)) for pid, stats in self.stats.items()}

    def run(self) -> None:
        next_tick = time.monotonic()
        last_flush = next_tick
        while not self._stopping.is_set():
            cpu_before = time.thread_time()
            with_smaps = self.cost.ticks % self.smaps_every == 0
            processes = self.tick(with_smaps)
            if with_smaps:
                self.smaps_every = max(
                    self.base_smaps_every, math.ceil(processes * self.rss_hz / SMAPS_READS_PER_SECOND)
                )
            self.cost.add(with_smaps, processes, time.thread_time() - cpu_before)
            now = time.monotonic()
            if now - last_flush >= 1.0:
                try:
                    self.flush()
                except OSError as exc:  # a full results disk: keep sampling in memory, no thread traceback
                    self.flush_error = f"{exc.strerror}: {exc.filename}"
                last_flush = now
            next_tick += self.period
            delay = next_tick - time.monotonic()
            if delay < 0:
                next_tick = time.monotonic()  # fell behind: don't burst to catch up
            else:
                self._stopping.wait(delay)

    def tick(self, with_smaps: bool) -> int:
        now = time.monotonic()
        files = self._files
        usage_file, peak_file = self._group_files
        pids = self.group.pids()  # re-opened each tick: cgroup.procs caches its pid list per open file
        usage, peak = _int(files.read(usage_file, 64)), _int(files.read(peak_file, 64))
        kinds = memory_kinds(files.read(self._stat_file, 8192), self.group.version) or {}
        rows = []
        with self._lock:
            for pid in pids:
                rss = procfs.parse_statm_rss(files.read(f"/proc/{pid}/statm", 128))
                if not rss:  # gone, or a zombie (statm reads all zeros once the memory is torn down)
                    files.forget_pid(pid)
                    continue
                pss = uss = None
                if with_smaps and (shares := procfs.parse_smaps_rollup(files.read(f"/proc/{pid}/smaps_rollup"))):
                    pss, uss = shares
                stats = self.stats.get(pid)
                if stats is None:
                    stats = self.stats[pid] = PidStats(first_seen=now, last_seen=now, command=procfs.command_line(pid))
                    if self.on_new_pid:
                        self.on_new_pid(pid)
                elif now - stats.first_seen < COMMAND_SETTLES_S:  # seen between fork and exec: read it again
                    command = procfs.command_line(pid) or stats.command
                    if command != stats.command:  # it ran exec since: what was read before was its parent's image
                        stats.max_rss, stats.max_pss, stats.max_uss = 0, None, None
                    stats.command = command
                stats.last_seen, stats.last_rss = now, rss
                stats.max_rss = max(stats.max_rss, rss)
                if pss is not None:
                    stats.max_pss = max(stats.max_pss or 0, pss)
                    stats.max_uss = max(stats.max_uss or 0, uss or 0)
                rows.append((now, pid, rss, pss, uss))
            present = {row[1] for row in rows}
            for pid, stats in self.stats.items():
                if pid not in present and stats.gone_mono is None:
                    stats.gone_mono = now
                    files.forget_pid(pid)
            self._rows.extend(rows)
            self._group_rows.append(
                (now, usage, peak, len(pids), kinds.get("anon"), kinds.get("file"), kinds.get("shmem"))
            )
        self._sample_leaves(now, present)
        total_rss = sum(row[2] for row in rows)
        if total_rss > self.max_sum_rss:
            self.max_sum_rss, self.usage_at_max_sum_rss = total_rss, usage
        self.latest_usage = usage
        self.latest_file_bytes = kinds.get("file")
        if kinds and (usage or 0) > self.max_usage:
            self.kinds_at_max_usage = kinds
        for kind, value in kinds.items():
            self.kinds_max[kind] = max(self.kinds_max.get(kind, 0), value)
        self.max_usage = max(self.max_usage, usage or 0)
        return len(rows)

    def _sample_leaves(self, now: float, present: set[int]) -> None:
        """Each live pool child's leaf: what the kernel cannot reclaim and the page cache, during its
        tasks (a dead child's leaf is not read again, and its files are let go)."""
        for leaf in self.group.leaf_dirs():
            name = os.path.basename(leaf)
            if not name[len(LEAF_PREFIX) :].isdigit():
                continue  # leaf-main (v2): the worker's main process, no task runs there
            if int(name[len(LEAF_PREFIX) :]) not in present:
                for file_name in ("memory.stat", "memory.kmem.usage_in_bytes"):
                    self._files.forget(os.path.join(leaf, file_name))
                continue
            kinds = read_kinds(self._files, leaf, self.group.version)
            held = unreclaimable(kinds)
            if kinds is None or held is None:
                continue
            pid = int(name[len(LEAF_PREFIX) :])
            with self._lock:
                self.leaves.setdefault(pid, LeafSeries()).add(now, held, kinds.get("file", 0))

    def flush(self) -> None:
        with self._lock:
            rows, group_rows = self._rows, self._group_rows
            self._rows, self._group_rows = [], []
        for path, columns, new_rows in (
            (self.samples_path, SAMPLE_COLUMNS, rows),
            (self.group_path, GROUP_COLUMNS, group_rows),
        ):
            with open_in_dir(path, "a", newline="") as handle:
                writer = csv.writer(handle)
                if not self._headers_written:
                    writer.writerow(columns)
                writer.writerows(new_rows)
        self._headers_written = True


def _int(data: bytes | None) -> int | None:
    text = data.strip() if data else b""
    return int(text) if text.isdigit() else None
