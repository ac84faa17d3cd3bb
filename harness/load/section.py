"""run.json's `load` section from a load driver's state, and the plain sentences it supports."""

from __future__ import annotations

from harness.load.soak import Budget
from harness.load.stats import NameStats, total_of
from harness.outcomes import OUTCOMES
from harness.record import RunRecord, Spread, Summary
from harness.sizes import format_size

BEHIND_RATIO = 0.95  # achieved below this share of offered: the worker did not keep up


def load_section(driver, record: RunRecord) -> dict:
    total = total_of(driver.by_name)
    shape = driver.shape
    asked = shape.asked_per_s
    # open loop: the sends made within the schedule's window over its length, against what it asks
    # (a sender that falls behind sends fewer in the window); closed loop: sends over their span
    offered = driver.sent_in_window / shape.sending_s if asked else total.offered_per_s
    kills = len(record.kills)
    sent = total.counts["sent"]
    series = {"offered": total.offered.as_dict(), "achieved": total.achieved.as_dict()}
    series.update({name: s.as_dict() for name, s in driver.series.items()})
    main = next((p for p in record.processes if p.role == "main"), None)
    budget = Budget(
        limit=record.config.memory_bytes,
        concurrency=record.config.concurrency,
        main_rss=(main.last_rss_bytes or 0) if main else 0,
        child_start_rss=_child_start(driver),
        task_transient=driver.max_above_start,
        replacement_seconds=driver.replacements.cost.quantile(0.5),
        mean_run_time=total.latency["run_time"].quantile(0.5),
    )
    # headroom is counted without page cache, which the kernel reclaims before it kills
    unreclaimable = _latest(driver.series["group_unreclaimable_bytes"])
    soak = driver.soak.findings(driver.final_count, unreclaimable, total.achieved_per_s, budget)
    section = {
        "shape": shape.as_dict(),
        "calls_from": driver.source,
        "tasks_file": "tasks.jsonl",
        "asked_per_s": asked,
        **figures_of(total),
        "offered_per_s": _round(offered),
        "schedule": {
            "asked_per_s": asked,
            "offered_per_s": _round(offered),
            "offered_error_percent": _round(100 * (offered - asked) / asked, 2) if offered and asked else None,
            "lateness_s": _rounded(driver.lateness.summary()),
            "lateness_basis": "when each send happened minus when it was due",
        },
        "in_flight": len(driver.flights),
        "oom_kills": kills,
        "oom_kills_per_1000_tasks": round(1000 * kills / sent, 3) if sent else None,
        "recycling": driver.replacements.as_dict(total.achieved),
        "series": series,
        "soak": soak,
        "by_task": {name: figures_of(stats) for name, stats in sorted(driver.by_name.items())},
        "histogram_relative_error": total.peak_rss.relative_error,
        "harness": driver.own_cost(),
    }
    section["findings"] = findings(section, driver)
    return section


def apply_summary(driver, summary: Summary) -> None:
    """The run summary's task figures for a load run, whose record holds no task list: outcomes
    counted as tasks became final, exact peaks through the histogram (within its relative error,
    the max exact; each exact peak is in tasks.jsonl)."""
    total = total_of(driver.by_name)
    summary.outcomes = {name: driver.outcomes.get(name, 0) for name in OUTCOMES}
    summary.tasks = total.counts["sent"]
    summary.peak_rss_bytes = _spread(total.peak_rss)
    summary.peak_above_start_bytes = _spread(driver.above_start)


def _spread(histogram) -> Spread:
    return Spread(
        p50=_int(histogram.quantile(0.5)), p95=_int(histogram.quantile(0.95)), max=_int(histogram.max), n=histogram.n
    )


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)


def figures_of(stats: NameStats) -> dict:
    data = stats.as_dict()
    return {
        "counts": data["counts"],
        "offered_per_s": data["offered_per_s"],
        "achieved_per_s": data["achieved_per_s"],
        "latency": data["latency"],
        "peak_rss_bytes": data["peak_rss_bytes"],
        "series": data["series"],
    }


def findings(section: dict, driver) -> list[str]:
    found = []
    offered, achieved = section["offered_per_s"], section["achieved_per_s"]
    backlog = driver.depth_at_send_end
    # behind: fewer tasks done per second than sent, and work still waiting when sending ended (a
    # rate lowered by a killed task alone is not a worker that cannot keep up)
    if offered and achieved and achieved < BEHIND_RATIO * offered and backlog != 0:
        grew = ""
        if backlog is not None:
            sending = max(1e-9, driver.shape.duration or len(driver.series["queue_depth"].values))
            grew = f"; the backlog grew to {backlog} waiting when sending ended (+{backlog / sending:.1f} tasks/s)"
        found.append(f"the worker could not keep up: {achieved:.1f} tasks/s achieved of {offered:.1f}/s offered{grew}")
    error = section["schedule"]["offered_error_percent"]
    if error is not None and abs(error) > 1:
        found.append(
            f"the send schedule itself was off: {offered:.1f}/s offered of {section['asked_per_s']:.1f}/s asked "
            f"({error:+.1f} %)"
        )
    if section["oom_kills"]:
        found.append(f"{section['oom_kills_per_1000_tasks']:g} OOM kills per 1,000 tasks sent")
    soak = section["soak"]
    growth, projection = soak.get("growth_per_1000_tasks_per_child_bytes"), soak.get("projection")
    recycled = driver.replacements.recycled
    if soak.get("significant") and growth and recycled:
        cost = driver.replacements.cost.quantile(0.5)
        took = f" (a replacement took {cost * 1000:.0f} ms at the median while work waited)" if cost is not None else ""
        found.append(
            f"each pool child grows {format_size(growth)} per 1,000 tasks; Celery recycled {recycled} children "
            f"in this run{took}, which is what keeps the group under its limit"
        )
    elif soak.get("significant") and growth and projection:
        settings = soak.get("recycling") or {}
        when = f" (in about {projection['seconds_from_now']:.0f} s)" if projection.get("seconds_from_now") else ""
        found.append(
            f"each pool child grows {format_size(growth)} per 1,000 tasks: at that pace the group reaches its limit "
            f"at task {projection['limit_reached_at_task']}{when}; worker_max_tasks_per_child="
            f"{settings.get('worker_max_tasks_per_child')} or worker_max_memory_per_child="
            f"{settings.get('worker_max_memory_per_child_kib')} (KiB) would stop it"
        )
    return found


def _child_start(driver) -> int | None:
    starts = [c.by_task.intercept for c in driver.soak.children.values() if c.by_task.intercept is not None]
    return round(min(starts)) if starts else None


def _latest(series) -> int | None:
    values = [v for v in series.values if v]
    return int(values[-1]) if values else None


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _rounded(summary: dict) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in summary.items()}
