"""A plan's calls without a list: a sequence that makes call *i* when it is asked for, so a plan of a
million tasks holds no million TaskCalls, yet has a length and can be read more than once (its names
checked before the worker starts, then sent). And the rules every reader of a plan shares: the order
calls are sent in, the distinct names, and the default timeout, which grows with the calls."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

TASK_SECONDS = 1.0  # the default timeout's allowance per task and pool process (a plan may say more)


@dataclass(frozen=True)
class TaskCall:
    """One message to send: which task, with what, and when (seconds after the worker is ready).
    `then`: the tasks chained after it (a Celery chain), each started by the worker once the one
    before succeeds, with that one's return value as its first argument; their `at` and `label` are
    not used (a link is labelled "sent by" the task before it), and a chained call's own `then`
    follows it."""

    task: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    at: float = 0.0
    label: str = ""
    then: tuple[TaskCall, ...] = ()

    def chained(self) -> list[TaskCall]:
        """The calls chained after this one, in the order they run."""
        return [one for call in self.then for one in (call, *call.chained())]


@dataclass(frozen=True)
class PlanCalls(Sequence[TaskCall]):
    """`length` calls, call *i* being `make(i)`: what a scenario returns for a plan of any size
    (`Plan(PlanCalls(ctx.tasks, lambda i: TaskCall(...)))`). `make` must be pure: each read makes
    the call anew."""

    length: int
    make: Callable[[int], TaskCall]

    def __len__(self) -> int:
        return self.length

    @overload
    def __getitem__(self, index: int) -> TaskCall: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[TaskCall]: ...

    def __getitem__(self, index: int | slice) -> TaskCall | Sequence[TaskCall]:
        if isinstance(index, slice):
            return [self.make(i) for i in range(*index.indices(self.length))]
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(index)
        return self.make(index)

    def __iter__(self) -> Iterator[TaskCall]:
        return map(self.make, range(self.length))


def in_time_order(calls: Iterable[TaskCall]) -> Iterator[TaskCall]:
    """The calls in the order they are due: a list the scenario built is sorted by `at` (stable), a
    PlanCalls or another lazy sequence is read in its own order, which must be its time order (a call
    out of order is sent as soon as it is reached, so late, never lost)."""
    if isinstance(calls, list | tuple):
        return iter(sorted(calls, key=lambda call: call.at))
    return iter(calls)


def call_names(calls: Iterable[TaskCall]) -> list[str]:
    """The distinct task names among the calls, sorted (one pass; nothing held per call)."""
    return sorted({name for call in calls for name in (call.task, *(then.task for then in call.chained()))})


def task_count(calls: Sequence[TaskCall]) -> int:
    """The tasks a plan's calls make, each chained link one more: every call's counted in a list; a lazy
    plan's calls are taken to chain as many as its first (reading a million calls for a timeout would
    cost more than it tells)."""
    if isinstance(calls, list | tuple):
        return sum(1 + len(call.chained()) for call in calls)
    return len(calls) * (1 + len(calls[0].chained())) if len(calls) else 0


def plan_timeout(stated: float, tasks: int, concurrency: int) -> float:
    """A plan's default timeout: what the scenario states, or, when that is shorter, TASK_SECONDS per
    task and pool process, so a plan of 50,000 tasks is not cut at the 60 s written for eight."""
    return max(stated, tasks * TASK_SECONDS / max(1, concurrency))
