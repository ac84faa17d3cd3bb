"""The fleet's figures beside one worker's (`oomlab run --fleet ... --beside RUN_DIR`), as the terminal
shows them: which run the worker's come from and when, then one row a figure with both ratios."""

from __future__ import annotations

import time

from oomlab.config.durations import format_seconds
from oomlab.config.sizes import format_size
from oomlab.record.fleet import BesideSingle
from oomlab.record.printable import printable_field


def beside_lines(b: BesideSingle) -> list[str]:
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(b.started_wall))
    one, many, r = b.single, b.fleet, b.ratios
    rows = [
        (
            "throughput",
            _rate(one.throughput_per_s),
            _rate(many.throughput_per_s),
            r.throughput,
            r.throughput_per_replica,
        ),
        ("latency p50", format_seconds(one.latency_p50_s), format_seconds(many.latency_p50_s), r.latency_p50, None),
        ("latency p95", format_seconds(one.latency_p95_s), format_seconds(many.latency_p95_s), r.latency_p95, None),
        ("largest task peak", format_size(one.peak_bytes), format_size(many.peak_bytes), r.peak, None),
        ("group peak", format_size(one.group_peak_bytes), format_size(many.group_peak_bytes), r.group_peak, None),
    ]
    lines = [
        f"beside one worker: run {printable_field(b.run_id)}, started {when} on {printable_field(b.hostname)} "
        f"({printable_field(b.placement)}), the same tasks with {format_size(b.limit_bytes)} and -c {b.concurrency} "
        f"(that run's figures, not measured again)",
        f"  {'':<18} {'one worker':>12} {f'fleet of {b.replicas}':>12} {'fleet ÷ one':>12} {'per replica':>12}",
    ]
    for name, single, fleet, ratio, per_replica in rows:
        lines.append(f"  {name:<18} {single:>12} {fleet:>12} {_times(ratio):>12} {_times(per_replica):>12}".rstrip())
    untimed = many.final - many.timed
    lines.append(
        f"  ({one.final} of {one.sent} tasks final on one worker, {many.final} of {many.sent} in the fleet"
        + (
            f", {untimed} of them known final from the result backend only, without times: the fleet's "
            f"throughput and latencies cover the other {many.timed}"
            if untimed > 0
            else ""
        )
        + "; the fleet's group peak is its largest replica's)"
    )
    return lines


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:g}/s"


def _times(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}×"
