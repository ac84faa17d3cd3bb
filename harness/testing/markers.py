"""Markers as pure functions: the tasks a test ran in the worker in, a verdict dataclass out (None
when the test passes), so the plugin only wires them to pytest and each is tested on its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from oomlab.config.sizes import format_size, parse_size

if TYPE_CHECKING:  # the pytest plugin imports this module in every session: nothing heavy at load
    from oomlab.record.schema import TaskRecord


@dataclass
class PeakViolation:
    limit_bytes: int
    offenders: list[TaskRecord]  # tasks at or above the limit, or OOM-killed
    tasks: list[TaskRecord]  # every task the test ran
    run_dir: str
    profile: bool = False  # profile=True (or the worker profiled them): memray's sites go into the message

    @property
    def long_repr(self) -> str:
        from oomlab.observe.profiling.text import failure_lines

        worst = max(self.offenders, key=lambda t: t.peak_rss_bytes or 0)
        return self._headline(worst) + (f"\n{failure_lines(self.offenders)}" if self.profile else "")

    def _headline(self, worst: TaskRecord) -> str:
        from oomlab.testing.assertions import highest_peaks

        return (
            f"{len(self.offenders)} of {len(self.tasks)} task(s) this test ran peaked at or above "
            f"{format_size(self.limit_bytes)}; the highest: {format_size(worst.peak_rss_bytes)} "
            f"({format_size((worst.peak_rss_bytes or 0) - self.limit_bytes)} over)\n"
            f"highest peaks:\n{highest_peaks(self.tasks)}\nrun directory: {self.run_dir}"
        )


def peak_rss_below(
    limit: str | int, *, tasks: list[TaskRecord], run_dir: str, profile: bool = False
) -> PeakViolation | None:
    """`@pytest.mark.peak_rss_below("256 MiB")`: every task the test ran in the worker peaked below
    the limit (exact VmHWM per task); a task OOM-killed during the test fails it too. With
    `profile=True` (or --oomlab-profile) the worker runs memray on the tasks, and a failure names the
    lines that held the memory."""
    limit_bytes = limit if isinstance(limit, int) else parse_size(str(limit).replace(" ", ""))
    offenders = [t for t in tasks if (t.peak_rss_bytes or 0) >= limit_bytes or any(r.killed for r in t.executions)]
    profiled = profile or any(t.profile for t in offenders)
    return PeakViolation(limit_bytes, offenders, tasks, run_dir, profiled) if offenders else None


MARKERS = {"peak_rss_below": peak_rss_below}
