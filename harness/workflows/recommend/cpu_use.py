"""The CPU a worker used during a run, and what the rest of the machine took: every thread of every
process in the worker's group is read from /proc/PID/task/TID/schedstat (nanoseconds on a core and
nanoseconds runnable but waiting for one, kept by the kernel per thread), the machine's busy time from
/proc/stat. A throughput measured while other processes held the cores is lower than what a replica
with its own cores does; these figures say by how much the worker was short (see throughput.py)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from oomlab.run.hooks import RunHook

if TYPE_CHECKING:
    from oomlab.run.view import RunView

NS = 1e-9


@dataclass
class CpuUse:
    window_s: float  # from the first reading to the last
    worker_cpu_s: float  # on a core, all the worker's threads together
    worker_wait_s: float  # runnable but waiting for a core
    machine_busy_s: float  # every core of the machine, busy with anything
    cores: int
    children_cpu_s: float = 0.0  # the part of worker_cpu_s in processes other than the main one (pool children)
    children_wait_s: float = 0.0

    @property
    def others_cores(self) -> float:
        """Cores the rest of the machine (oomlab itself, the broker, other programs) kept busy."""
        return max(0.0, self.machine_busy_s - self.worker_cpu_s) / self.window_s if self.window_s else 0.0

    @property
    def worker_cores(self) -> float:
        return self.worker_cpu_s / self.window_s if self.window_s else 0.0


def thread_times(pid: int) -> dict[int, tuple[int, int]]:
    """{tid: (ns on a core, ns waiting for one)} for the threads of `pid` that can still be read."""
    found: dict[int, tuple[int, int]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as handle:
                on_cpu, waiting = handle.read().split()[:2]
        except (OSError, ValueError):
            continue
        found[int(tid)] = (int(on_cpu), int(waiting))
    return found


def machine_busy_ns() -> int:
    """All cores' busy time since boot (/proc/stat's first line, everything but idle and iowait)."""
    with open("/proc/stat", "rb") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: steal (the hypervisor ran something else) is a core
    # the worker could not have either
    ticks = sum(fields[:8]) - fields[3] - fields[4]
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


class CpuWatch(RunHook):
    """Read at each `running` call of the run (a few times a second) while the worker takes tasks. A
    thread first seen is counted from zero (a child or a pool thread started during the run: its
    start-up is part of the work); a thread that ends keeps its last reading."""

    def __init__(self) -> None:
        self.first: dict[int, tuple[int, int]] | None = None
        self.last: dict[int, tuple[int, int]] = {}
        self.in_main: set[int] = set()  # thread ids of the worker's main process
        self.began: tuple[float, int] | None = None
        self.ended: tuple[float, int] | None = None

    def running(self, run: RunView) -> None:
        group = run.group
        if group is None:
            return
        now: dict[int, tuple[int, int]] = {}
        for pid in group.pids():
            threads = thread_times(pid)
            if pid == run.record.worker.pid:
                self.in_main.update(threads)
            now.update(threads)
        mark = (time.monotonic(), machine_busy_ns())
        if self.first is None:
            self.first, self.began = now, mark
        self.last.update(now)
        self.ended = mark

    def result(self) -> CpuUse | None:
        if self.first is None or self.began is None or self.ended is None or self.ended[0] <= self.began[0]:
            return None
        on_cpu = waiting = child_cpu = child_wait = 0
        for tid, (cpu, wait) in self.last.items():
            base = self.first.get(tid, (0, 0))
            if cpu < base[0]:  # a thread id the kernel gave again to a new thread: all its time is new
                base = (0, 0)
            on_cpu += cpu - base[0]
            waiting += wait - base[1]
            if tid not in self.in_main:
                child_cpu += cpu - base[0]
                child_wait += wait - base[1]
        return CpuUse(
            round(self.ended[0] - self.began[0], 3),
            round(on_cpu * NS, 4),
            round(waiting * NS, 4),
            round((self.ended[1] - self.began[1]) * NS, 4),
            len(os.sched_getaffinity(0)),
            round(child_cpu * NS, 4),
            round(child_wait * NS, 4),
        )

    def off_cpu_per_task(self, tasks: int, mean_run_time_s: float) -> float | None:
        """In a run of one prefork child taking one task at a time: the seconds a task spends neither
        on a core nor waiting for one (I/O, sleep), its run time less its child's CPU and core waits."""
        use = self.result()
        if use is None or not tasks or not use.children_cpu_s:
            return None
        return max(0.0, mean_run_time_s - (use.children_cpu_s + use.children_wait_s) / tasks)
