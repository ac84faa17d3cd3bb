"""run.json's `load` section from a load driver's state, and the plain sentences it supports."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from oomlab.assemble.findings import failure_sentences
from oomlab.assemble.outcomes import OUTCOMES
from oomlab.config.durations import format_seconds
from oomlab.config.load_shapes import PLAN, LoadShape
from oomlab.config.sizes import format_size
from oomlab.record.histogram import LogHistogram
from oomlab.record.load import LoadSection, NameFigures, Schedule, SoakFindings
from oomlab.record.schema import RunRecord, Spread, Summary
from oomlab.record.stream import TASKS_FILE
from oomlab.run.load.book import Book
from oomlab.run.load.figures import Figures
from oomlab.run.load.replacements import Replacements
from oomlab.run.load.schedule import Scheduler
from oomlab.run.load.series import Series
from oomlab.run.load.soak import Budget, Soak
from oomlab.run.load.stats import NameStats


class LoadState(Protocol):
    """What the section is read from: a load driver's parts (the driver itself satisfies it)."""

    shape: LoadShape
    book: Book
    scheduler: Scheduler
    replacements: Replacements
    figures: Figures
    soak: Soak

    def sending_window(self) -> float: ...


BEHIND_RATIO = 0.95  # achieved below this share of offered: the worker did not keep up


def load_section(driver: LoadState, record: RunRecord, total: NameStats) -> LoadSection:
    """`total`: every name's figures merged (total_of), made once per checkpoint by the caller."""
    book, scheduler = driver.book, driver.scheduler
    shape = driver.shape
    asked = shape.asked_per_s
    # open loop: the sends made within the schedule's window over the part of it covered so far, against
    # what it asks (a sender that falls behind sends fewer in it); closed loop: sends over their span
    window = driver.sending_window()
    offered = book.sent_in_window / window if asked else total.offered_per_s
    kills = len(record.kills)
    sent = total.counts["sent"]
    main = next((p for p in record.processes if p.role == "main"), None)
    budget = Budget(
        limit=record.config.memory_bytes,
        concurrency=record.config.concurrency,
        main_rss=(main.last_rss_bytes or 0) if main else 0,
        child_start_rss=_child_start(driver),
        task_transient=book.max_above_start,
        replacement_seconds=driver.replacements.cost.quantile(0.5),
        mean_run_time=total.latency["run_time"].quantile(0.5),
    )
    # headroom is counted without page cache, which the kernel reclaims before it kills
    unreclaimable = _latest(driver.figures.series["group_unreclaimable_bytes"])
    section = replace(
        LoadSection.of(total.figures(), {name: s.points() for name, s in driver.figures.series.items()}),
        offered_per_s=_round(offered),
        shape=shape,
        calls_from=scheduler.source,
        tasks_file=TASKS_FILE,
        asked_per_s=asked,
        schedule=Schedule(
            asked_per_s=asked,
            offered_per_s=_round(offered),
            offered_error_percent=_round(100 * (offered - asked) / asked, 2) if offered and asked else None,
            lateness_s=book.lateness.summary(),
            lateness_basis="when each send happened minus when it was due",
        ),
        in_flight=len(book.flights),
        oom_kills=kills,
        oom_kills_per_1000_tasks=round(1000 * kills / sent, 3) if sent else None,
        recycling=driver.replacements.figures(total.achieved),
        soak=driver.soak.findings(book.final_count, unreclaimable, total.achieved_per_s, budget),
        by_task={name: _by_task(book, name, window if asked else None) for name in sorted(book.by_name)},
        histogram_relative_error=total.peak_rss.relative_error,
        harness=driver.figures.own_cost(),
    )
    section.findings = findings(section, driver) + failure_sentences(book.failures)
    return section


def _by_task(book: Book, name: str, window: float | None) -> NameFigures:
    """A name's figures; in an open loop its offered rate by the same rule as the run's (its sends in
    the schedule's window over the window), so the names add up to the whole."""
    figures = book.by_name[name].figures()
    if window:
        figures = replace(figures, offered_per_s=_round(book.sent_in_window_by_name[name] / window))
    return figures


def apply_summary(book: Book, summary: Summary, total: NameStats) -> None:
    """The run summary's task figures for a load run, whose record holds no task list: outcomes
    counted as tasks became final, exact peaks through the histogram (within its relative error,
    the max exact; each exact peak is in tasks.jsonl). `total`: as for load_section."""
    summary.outcomes = {name: book.outcomes.get(name, 0) for name in OUTCOMES}
    summary.tasks = total.counts["sent"]
    summary.peak_rss_bytes = _spread(total.peak_rss)
    summary.peak_above_start_bytes = _spread(book.above_start)
    summary.tree_peak_above_start_bytes = _spread(book.tree_above_start)
    summary.needs_above_start_bytes = _spread(book.needs)
    summary.page_cache_above_start_bytes = _spread(book.page_cache)


def _spread(histogram: LogHistogram) -> Spread:
    return Spread(
        p50=_int(histogram.quantile(0.5)), p95=_int(histogram.quantile(0.95)), max=_int(histogram.max), n=histogram.n
    )


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)


def findings(section: LoadSection, driver: LoadState) -> list[str]:
    found: list[str] = []
    offered, achieved = section.offered_per_s, section.achieved_per_s
    backlog = driver.scheduler.depth_at_send_end
    # behind: fewer tasks done per second than sent, and work still waiting when sending ended (a
    # rate lowered by a killed task alone is not a worker that cannot keep up); a streamed plan is sent
    # ahead of the worker by design (its window), with no rate to keep up with
    behind = offered and achieved and achieved < BEHIND_RATIO * offered and backlog != 0
    if behind and driver.shape.kind != PLAN:
        grew = ""
        if backlog is not None:
            depth = driver.figures.series["queue_depth"]
            sending = max(1e-9, driver.shape.duration or len(depth.values) * depth.width)
            grew = f"; the backlog grew to {backlog} waiting when sending ended (+{backlog / sending:.1f} tasks/s)"
        found.append(f"the worker could not keep up: {achieved:.1f} tasks/s achieved of {offered:.1f}/s offered{grew}")
    error = section.schedule.offered_error_percent if section.schedule else None
    if error is not None and abs(error) > 1:
        found.append(
            f"the send schedule itself was off: {offered:.1f}/s offered of {section.asked_per_s:.1f}/s asked "
            f"({error:+.1f} %)"
        )
    if section.oom_kills:
        found.append(f"{section.oom_kills_per_1000_tasks:g} OOM kills per 1,000 tasks sent")
    soak = section.soak
    growth = soak.growth_per_1000_tasks_per_child_bytes if soak else None
    if soak and soak.significant and growth:
        found.extend(_growth(soak, growth, driver.replacements, section.oom_kills))
    return found


def _growth(soak: SoakFindings, growth: int, replacements: Replacements, kills: int) -> list[str]:
    """The soak's finding: recycling seen, else the first projection against the first kill when
    kills happened (a projection into the future would be past), else the projection."""
    grows = f"each pool child grows {format_size(growth)} per 1,000 tasks"
    if replacements.recycled:
        cost = replacements.cost.quantile(0.5)
        took = (
            f" (a replacement took {format_seconds(cost)} at the median while work waited)" if cost is not None else ""
        )
        kept = (
            f"yet the group reached its limit ({kills} OOM kill(s))"
            if kills
            else "which is what keeps the group under its limit"
        )
        return [f"{grows}; Celery recycled {replacements.recycled} children in this run{took}, {kept}"]
    settings = soak.recycling
    stop = (
        f"worker_max_tasks_per_child={settings.worker_max_tasks_per_child if settings else None} or "
        f"worker_max_memory_per_child={settings.worker_max_memory_per_child_kib if settings else None} (KiB) "
        "would stop it"
    )
    first, killed_at = soak.first_projection, soak.first_kill_at_task
    if killed_at:
        error = soak.first_projection_error_percent
        off = f" ({error:+.1f} %)".replace("-", "\u2212") if error is not None else ""
        seen = (
            f"projected at task {first.made_at_task}: the limit at task {first.limit_reached_at_task}; "
            f"the first kill came at task {killed_at}{off}"
            if first
            else f"the first kill came at task {killed_at}, before a projection was made"
        )
        return [f"{grows}: {seen}; {stop}"]
    projection = soak.projection
    if projection is None:
        return []
    when = f" (in about {format_seconds(projection.seconds_from_now)})" if projection.seconds_from_now else ""
    return [
        f"{grows}: at that pace the group reaches its limit at task {projection.limit_reached_at_task}{when}; {stop}"
    ]


def _child_start(driver: LoadState) -> int | None:
    starts = [c.by_task.intercept for c in driver.soak.children.values() if c.by_task.intercept is not None]
    return round(min(starts)) if starts else None


def _latest(series: Series) -> int | None:
    values = [v for v in series.values if v]
    return int(values[-1]) if values else None


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
