"""Whether a run record may become a baseline: one predicate, shared by `baseline save` and the gate's
first baseline, so a failed run's empty or partial statistics never replace a good baseline."""

from __future__ import annotations

from oomlab.record.schema import RunRecord

# a task that raised still ran to its end in its process: its peak is measured like a success's
MEASURED = ("succeeded", "failed")


def record_is_baseline_worthy(record: RunRecord) -> str | None:
    """None when the run did its work cleanly; otherwise why it must not be a baseline (one clause)."""
    if record.status != "complete":
        return f"the run's status is {record.status!r}, not 'complete'" + (
            f" ({record.message})" if record.message else ""
        )
    if record.kills:
        return f"the run had {len(record.kills)} OOM kill(s)"
    if record.load is not None:  # a load run: its tasks are in tasks.jsonl, their outcomes in the summary
        return _load_run_unworthy(record)
    unfinished = [task for task in record.tasks if task.outcome not in MEASURED]
    if unfinished:
        outcomes = sorted({task.outcome for task in unfinished})
        return f"{len(unfinished)} task(s) did not succeed ({', '.join(outcomes)})"
    if not any(task.peak_is_exact for task in record.tasks):
        return "the run has no task with an exact peak"
    return None


def _load_run_unworthy(record: RunRecord) -> str | None:
    failed = {name: count for name, count in record.summary.outcomes.items() if name not in MEASURED and count}
    if failed:
        return f"{sum(failed.values())} task(s) did not succeed ({', '.join(sorted(failed))})"
    if not record.summary.peak_rss_bytes.n:
        return "the run has no task with an exact peak"
    return None
