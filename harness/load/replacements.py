"""Pool children replaced during a load run (recycled by Celery or killed) and what each replacement
cost: the time from the old child's exit to the first task a new child took, counted only when work
was waiting then (otherwise the new child waits for work, which costs nothing)."""

from __future__ import annotations

from collections import deque

from harness.load.histogram import LogHistogram


class Replacements:
    def __init__(self) -> None:
        self.children: set[int] = set()  # every pool child seen start
        self.exited: set[int] = set()
        self.unproven: set[int] = set()  # children born after an exit that have not taken a task yet
        self.pending: deque[float] = deque()  # exits while work waited, oldest first
        self.recycled = 0
        self.lost = 0
        self.cost = LogHistogram()

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
        else:
            self.lost += 1
        if work_waiting:
            self.pending.append(at)

    def task_started(self, pid: int, at: float) -> None:
        if pid in self.unproven:
            self.unproven.discard(pid)
            if self.pending:
                self.cost.record(max(0.0, at - self.pending.popleft()))

    def as_dict(self) -> dict:
        return {
            "children_recycled": self.recycled,
            "children_lost": self.lost,
            "replacement_seconds": self.cost.summary(),
            "replacement_basis": "old child's exit to a new child's first task, counted while work waited",
        }
