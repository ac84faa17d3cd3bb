"""Compare a run's task statistics with a baseline under thresholds: one row per task and check."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from oomlab.config.sizes import format_size
from oomlab.workflows.gate.stats import TaskStats
from oomlab.workflows.gate.thresholds import LoadThreshold, Threshold

RUN = "(run)"  # the task column of a check on the run itself: it did its work, it may be a baseline


@dataclass
class Check:
    task: str
    threshold: str  # e.g. "peak:10%", or "oom" for a new OOM kill
    baseline: int | None
    current: float | None  # bytes, or a load statistic's value
    failed: bool
    shown: tuple[str, str] | None = None  # a load check's bound and value as text
    detail: str | None = None  # a run-level check's reason (the run is not one to gate on)

    @property
    def on_the_run(self) -> bool:
        """A check of the run itself (oomlab.workflows.gate.run_checks), not of a task's memory."""
        return self.task == RUN

    @property
    def change_percent(self) -> float | None:
        if self.baseline and self.current is not None:
            return 100.0 * (self.current - self.baseline) / self.baseline
        return None


@dataclass
class GateResult:
    checks: list[Check] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # tasks only in one of the two runs, first-run baseline
    saved: str = ""  # the first run of a gate: the baseline written (nothing was compared)
    baseline: dict[str, TaskStats] = field(default_factory=dict)  # the first run's: the figures saved

    @property
    def failed(self) -> list[Check]:
        """Every failing check: any fails the gate (exit 7)."""
        return [c for c in self.checks if c.failed]

    @property
    def regressions(self) -> list[Check]:
        """The failing checks of tasks: memory or a load figure past its threshold, a new OOM kill."""
        return [c for c in self.failed if not c.on_the_run]

    @property
    def unfit(self) -> list[Check]:
        """The failing checks of the run itself: why it cannot be gated on, or be the first baseline."""
        return [c for c in self.failed if c.on_the_run]


def compare(
    baseline: dict[str, TaskStats],
    current: dict[str, TaskStats],
    default: list[Threshold | LoadThreshold],
    per_task: dict[str, list[Threshold | LoadThreshold]],
) -> GateResult:
    result = GateResult()
    for name in sorted(current):
        now = current[name]
        if name not in baseline:
            result.notices.append(f"{name} is new (no baseline to compare with)")
            continue
        before = baseline[name]
        if now.kills > before.kills:
            result.checks.append(Check(name, "oom", before.kills, now.kills, True))
        if now.n == 0 or before.n == 0:
            result.notices.append(f"{name} has no exact peak in {'this run' if now.n == 0 else 'the baseline'}")
            continue
        for threshold in per_task.get(name, default):
            if not isinstance(threshold, Threshold):
                continue  # a load threshold: harness/workflows/gate/load_checks.py
            base, cur = before.get(threshold.stat), now.get(threshold.stat)
            if (base is None or cur is None) and threshold.stat.startswith("growth"):
                # an older baseline, or tasks with no exact growth: the same rule on the absolute peak
                result.notices.append(f"{name} has no {threshold.stat} in both runs: {threshold.stat} compared as peak")
                threshold = replace(threshold, stat="peak")
                base, cur = before.get("peak"), now.get("peak")
            if base is None or cur is None:
                result.notices.append(
                    f"{name} has no {threshold.stat} in {'this run' if cur is None else 'the baseline'}"
                )
                continue
            if threshold.exceeded(base, cur) and (needs := _needs_instead(name, threshold, before, now)) is not None:
                result.notices.append(  # a hint only: `needs` is sampled, so it never overrules growth
                    f"{name}: {threshold.stat} {format_size(base)} → {format_size(cur)} may be page cache; it needs "
                    f"{format_size(needs.baseline or 0)} → {format_size(needs.current or 0)} (--fail "
                    f"'{needs.threshold}' judges only that)"
                )
            result.checks.append(Check(name, str(threshold), base, cur, threshold.exceeded(base, cur)))
    for name in sorted(set(baseline) - set(current)):
        result.notices.append(f"{name} is in the baseline but did not run")
    return result


def _needs_instead(name: str, threshold: Threshold, before: TaskStats, now: TaskStats) -> Check | None:
    """A growth check that fails only for page cache: growth counts the page cache a task's tree
    touched (a file it wrote), which the kernel reclaims before it kills. Where what the task needs
    (anon + shmem + kernel above its start) is measured in both runs and keeps the same bounds, page
    cache may be the difference: the notice offers the needs check (None: nothing to offer). It never
    replaces growth's verdict: needs is sampled, and a short task's peak can fall between samples."""
    if not threshold.stat.startswith("growth"):
        return None
    stat = threshold.stat.replace("growth", "needs", 1)
    base, cur = before.get(stat), now.get(stat)
    if base is None or cur is None:
        return None
    needs = replace(threshold, stat=stat)
    return None if needs.exceeded(base, cur) else Check(name, str(needs), base, cur, False)
