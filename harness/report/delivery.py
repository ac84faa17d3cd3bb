"""The delivery lab's truth table in the terminal, one row per cell, and the explanations below it."""

from __future__ import annotations

from statistics import median

from oomlab.config.durations import format_seconds
from oomlab.config.lab_cells import AXES
from oomlab.workflows.lab.delivery import CellResult
from oomlab.workflows.lab.explain import explanations
from rich.console import Console
from rich.table import Table


def _seconds(values: list[float]) -> str:
    if not values:
        return "-"
    return format_seconds(median(values))


def cell_line(result: CellResult) -> str:
    """One finished cell in a line, for the progress output."""
    verdicts = result.delivery.verdicts if result.delivery else []
    if result.status != "complete" or not verdicts:
        return f"{result.cell.key}: {result.status} ({result.message})"
    v = verdicts[0]
    return f"{result.cell.key}: {v.outcome} · {v.executions} run(s), {v.kills} kill(s), state {v.final_state}"


def render_table(results: list[CellResult], console: Console) -> None:
    table = Table(title="what happens to a task after an OOM kill (each row measured)", title_justify="left")
    for axis in AXES:
        table.add_column(axis, no_wrap=True)
    for column in (
        "outcome",
        "state",
        "message",
        "runs",
        "redelivery",
        "stuck",
        "poison loop",
        "oomlab",
        "Celery",
        "hb expiry",
        "Flower",
    ):
        table.add_column(column, no_wrap=True, justify="right" if column in ("runs", "redelivery") else "left")
    for result in results:
        axes = [getattr(result.cell, axis) for axis in AXES]
        delivery = result.delivery
        if result.status != "complete" or delivery is None or not delivery.verdicts:
            table.add_row(*axes, result.status, result.message or "", *[""] * 9)
            continue
        v = delivery.verdicts[0]
        detection = delivery.detection
        loop = v.poison_loop
        table.add_row(
            *axes,
            v.outcome,
            v.final_state or "-",
            v.message,
            str(v.executions),
            _seconds([v.first_redelivery_s] if v.first_redelivery_s is not None else []),
            "yes" if v.stuck_in_started else "no",
            f"{loop.kills} kills, {loop.per_minute}/min" if loop else "no",
            _seconds([d.oomlab for d in detection if d.oomlab is not None]),
            _seconds([d.celery_pool_noticed for d in detection if d.celery_pool_noticed is not None]),
            _seconds([d.celery_heartbeat_expiry for d in detection if d.celery_heartbeat_expiry is not None]),
            "-" if delivery.flower_worker_online is None else str(delivery.flower_worker_online),
        )
    console.print(table)
    console.print(
        "message: where the broker had it after the window. stuck: STARTED with nothing left to run it. "
        "oomlab / Celery / hb expiry: medians over the cell's kills from the kernel's kill time to oomlab "
        "knowing the pid, to Celery's main process logging the child's death, and to celery.events.state "
        "calling the worker dead (whole-worker kills). Flower: its flower_worker_online gauge when the "
        "window closed."
    )
    for outcome, count, why, avoid, measured in explanations(results):
        console.print(f"\n[bold]{outcome}[/bold] ({count} cell{'s' if count > 1 else ''}; {measured})")
        console.print(f"  {why}")
        console.print(f"  [green]Avoid:[/green] {avoid}")
