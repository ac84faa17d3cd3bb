"""Pool children replaced during a load run (recycled by Celery or killed) and what recycling
cost: the time from a recycled child's exit (worker_max_*_per_child, exit 155) to the first task a
new child took, counted only when work was waiting then (otherwise the new child waits for work,
which costs nothing). A killed child's replacement is no cost of recycling: it is paired with a new
child like any exit, so the pairs stay in order, but not counted."""

from __future__ import annotations

from collections import deque

from oomlab.record.histogram import LogHistogram
from oomlab.record.load import RecyclingFigures, ThroughputDip
from oomlab.run.load.series import Series


class Replacements:
    def __init__(self) -> None:
        self.children: set[int] = set()  # every pool child seen start
        self.exited: set[int] = set()
        self.unproven: set[int] = set()  # children born after an exit that have not taken a task yet
        self.pending: deque[tuple[float, bool]] = deque()  # exits while work waited, oldest first: (at, recycled)
        self.recycled = 0
        self.lost = 0
        self.cost = LogHistogram()
        self.origin = 0.0  # the load's start (monotonic): exits are counted per second from it
        self.exits = Series()  # children recycled, per second: to set against the achieved rate

    def child_started(self, pid: int) -> None:
        self.children.add(pid)
        if self.exited:
            self.unproven.add(pid)

    def child_exited(self, pid: int, at: float, recycled: bool, work_waiting: bool) -> None:
        if pid in self.exited or pid not in self.children:
            return
        self.exited.add(pid)
        if recycled:
            self.recycled += 1
            self.exits.add(at - self.origin)
        else:
            self.lost += 1
        if work_waiting:
            self.pending.append((at, recycled))

    def task_started(self, pid: int, at: float) -> None:
        if pid in self.unproven:
            self.unproven.discard(pid)
            if self.pending:
                exited, recycled = self.pending.popleft()
                if recycled:
                    self.cost.record(max(0.0, at - exited))

    def figures(self, achieved: Series) -> RecyclingFigures:
        return RecyclingFigures(
            children_recycled=self.recycled,
            children_lost=self.lost,
            replacement_seconds=self.cost.summary(),
            replacement_basis="a recycled child's exit to a new child's first task, counted while work waited "
            "(killed children's replacements are not counted)",
            throughput_dip=throughput_dip(self.exits, achieved),
        )


def throughput_dip(exits: Series, achieved: Series) -> ThroughputDip | None:
    """Tasks achieved per second in the seconds a child was recycled against the other seconds of the
    run (between its first and last completion): the throughput a replacement costs, as measured.
    A long run's buckets are wider than a second (oomlab.run.load.series): both series are read at the
    wider one's width. None without buckets of both kinds."""
    if not any(exits.values):
        return None
    width = max(exits.width, achieved.width)
    recycled, done = exits.values_at(width), achieved.values_at(width)
    active = [i for i, value in enumerate(done) if value]
    if not active:
        return None
    window = range(active[0], active[-1] + 1)
    replaced = [done[i] for i in window if i < len(recycled) and recycled[i]]
    others = [done[i] for i in window if not (i < len(recycled) and recycled[i])]
    if not replaced or not others:
        return None
    during, otherwise = sum(replaced) / len(replaced) / width, sum(others) / len(others) / width
    return ThroughputDip(
        per_s_in_seconds_with_a_replacement=round(during, 2),
        per_s_otherwise=round(otherwise, 2),
        dip_percent=round(100 * (otherwise - during) / otherwise, 1) if otherwise else None,
        seconds_with_a_replacement=round(len(replaced) * width),
    )
