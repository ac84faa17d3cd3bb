"""Variants side by side: one column per run, one row per figure that tells the mechanism apart."""

from __future__ import annotations

from collections.abc import Callable

from oomlab.config.sizes import format_size
from oomlab.record.schema import RunRecord
from rich.console import Console
from rich.table import Table


def _size(value) -> str:
    return format_size(value) if value else "-"


def _settings(record: RunRecord) -> str:
    config = record.config
    conf = config.celery_conf
    extra = " ".join(f"{k}={v}" for k, v in conf.items())
    return f"{config.pool} × {config.concurrency}" + (f" {extra}" if extra else "")


def _vs_sum(record: RunRecord) -> str:
    summary = record.summary
    total, usage = summary.sum_rss_peak_bytes, summary.group_usage_at_sum_rss_peak_bytes
    return f"{_size(total)} vs {_size(usage)}" if total else "-"


ROWS: list[tuple[str, Callable[[RunRecord], str]]] = [
    ("status", lambda r: r.status),
    ("settings", _settings),
    ("tasks succeeded", lambda r: f"{r.summary.outcomes.get('succeeded', 0)}/{r.summary.tasks}"),
    (
        "tasks killed or lost",
        lambda r: str(sum(v for k, v in r.summary.outcomes.items() if k in ("killed", "requeued", "stuck", "poison"))),
    ),
    ("OOM kills", lambda r: str(r.summary.kills)),
    ("children recycled (exit 155)", lambda r: str(r.summary.children_recycled)),
    ("task peak RSS p50", lambda r: _size(r.summary.peak_rss_bytes.p50)),
    ("task peak RSS max (killed included)", lambda r: _size(r.summary.peak_rss_all_bytes.max)),
    ("task tree growth max", lambda r: _size(r.summary.tree_peak_above_start_bytes.max)),
    ("task peak above start max", lambda r: _size(r.summary.peak_above_start_bytes.max)),
    ("tracemalloc peak max", lambda r: _size(r.summary.traced_peak_bytes.max)),
    ("main process peak (VmHWM)", lambda r: _size(r.summary.main_peak_rss_bytes)),
    ("child USS max (private since fork)", lambda r: _size(r.summary.child_uss_bytes.max)),
    ("child PSS max", lambda r: _size(r.summary.child_pss_bytes.max)),
    ("sum of RSS vs group usage", _vs_sum),
    ("group peak", lambda r: _size(r.summary.group_peak_bytes)),
]


def render_comparison(records: list[RunRecord], console: Console) -> None:
    limit = records[0].config.memory_bytes if records else None
    table = Table(title=f"limit {format_size(limit)}", title_justify="left")
    table.add_column("")
    for record in records:
        table.add_column(record.config.variant, justify="right")
    for label, value in ROWS:
        cells = [value(record) for record in records]
        if label == "tracemalloc peak max" and all(cell == "-" for cell in cells):
            continue
        table.add_row(label, *cells)
    console.print(table)
