"""Inline SVG charts drawn in Python: the page is one file that needs no script library and still
shows every line, span and marker with scripts off; report.js only adds hover and toggles.

Hover text travels in `data-tip` attributes (one line per fact); `data-series` ties a drawn line
to its legend entry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from oomlab.config.sizes import MIB
from oomlab.report.html_data import Series

WIDTH = 960
LEFT, RIGHT = 86, 16
PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#ff7f0e")
OUTCOME_COLORS = {
    "succeeded": "#2ca02c",
    "killed": "#d62728",
    "failed": "#ff7f0e",
    "requeued": "#9467bd",
    "stuck": "#8c564b",
    "poison": "#7f0000",
}


def attr(value: object) -> str:
    return escape(str(value), quote=True)


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least `high`."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(math.ceil(high / step) + 1)]


@dataclass
class Scale:
    """A linear map from data to pixels."""

    lo: float
    hi: float
    px_lo: float
    px_hi: float

    def __call__(self, value: float) -> float:
        span = (self.hi - self.lo) or 1.0
        return round(self.px_lo + (value - self.lo) / span * (self.px_hi - self.px_lo), 1)


def color_of(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def series_colors(series: list[Series]) -> dict[str, str]:
    colors = {}
    for index, line in enumerate(s for s in series if s.key != "group"):
        colors[line.key] = color_of(index)
    colors["group"] = "#222"
    return colors


def legend(series: list[Series], colors: dict[str, str], with_limit: bool) -> str:
    items = [
        f'<button type="button" class="legend-item" data-series="{attr(s.key)}" style="--c:{colors[s.key]}">'
        f"{escape(s.label)}</button>"
        for s in series
    ]
    if with_limit:
        items.append('<button type="button" class="legend-item" data-series="limit" style="--c:#d62728">limit</button>')
    return f'<div class="legend" role="group" aria-label="toggle lines">{"".join(items)}</div>'


def _polyline(points: list[tuple[float, float]], x: Scale, y: Scale) -> str:
    return " ".join(f"{x(t)},{y(v)}" for t, v in points)


def _x_axis(x: Scale, top: float, bottom: float, duration: float) -> list[str]:
    parts = []
    for tick in nice_ticks(duration, 8):
        if tick > duration * 1.0001:
            break
        px = x(tick)
        parts.append(f'<line class="grid" x1="{px}" x2="{px}" y1="{top}" y2="{bottom}"/>')
        parts.append(f'<text class="tick" x="{px}" y="{bottom + 14}" text-anchor="middle">{tick:g} s</text>')
    return parts


def _y_axis(y: Scale, x: Scale, high: float, unit: str, per_unit: float = 1.0) -> list[str]:
    """Grid lines at round values of the unit (MiB for memory) up to the scale's top."""
    parts = []
    for tick in nice_ticks(high / per_unit):
        if tick * per_unit > y.hi:
            break
        py = y(tick * per_unit)
        parts.append(f'<line class="grid" x1="{x.px_lo}" x2="{x.px_hi}" y1="{py}" y2="{py}"/>')
        parts.append(
            f'<text class="tick" x="{x.px_lo - 6}" y="{py + 4}" text-anchor="end">{tick:g}{escape(unit)}</text>'
        )
    return parts


@dataclass
class SpanMark:
    lane: int  # index into the lanes
    start_s: float
    end_s: float
    outcome: str
    tip: str
    task_id: str
    link: str = ""  # clicking the span opens this page (a profiled task's flame graph)
    tree: bool = False  # drawn on a lane of the tasks-started-by-tasks band (`lane` indexes TreeLane)


@dataclass
class TreeLane:
    """One task in the band of tasks started by tasks, under the task that started it."""

    label: str
    depth: int
    group: int  # which tree (a task and all it started) the lane belongs to
    root_id: str


@dataclass
class KillMark:
    at_s: float
    label: str
    tip: str


def timeline_svg(
    series: list[Series],
    limit_bytes: int | None,
    duration_s: float,
    lane_labels: list[str],
    spans: list[SpanMark],
    kills: list[KillMark],
    title: str,
    y_high_bytes: float | None = None,
    width: int = WIDTH,
    tree_lanes: list[TreeLane] | None = None,
) -> str:
    """Memory over time above, task spans per process below, then (when tasks started tasks) each
    such tree of tasks on lanes of its own, a task under the one that started it; kills across all.
    `width` in SVG units (a narrower chart keeps its text readable when two stand side by side)."""
    colors = series_colors(series)
    mem_top, mem_bottom = 10, 270
    lanes_top = mem_bottom + 24
    lane_h = 20
    tree_lanes = tree_lanes or []
    tree_top = lanes_top + max(len(lane_labels), 1) * lane_h + (TREE_GAP if tree_lanes else 0)
    bottom = tree_top + len(tree_lanes) * TREE_LANE_H
    height = bottom + 24
    duration = max(duration_s, max((t for s in series for t, _ in s.points), default=0.0), 0.001)
    peak = max((v for s in series for _, v in s.points), default=0.0)
    high = y_high_bytes or max(peak, (limit_bytes or 0) * 1.08, MIB)
    x = Scale(0.0, duration, LEFT, width - RIGHT)
    y = Scale(0.0, high, mem_bottom, mem_top)
    parts = [
        f'<svg class="chart timeline" viewBox="0 0 {width} {height}" role="img" aria-label="{attr(title)}">',
        f"<title>{escape(title)}</title>",
        *_y_axis(y, x, high, " MiB", MIB),
        *_x_axis(x, mem_top, bottom, duration),
        f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{mem_top}" y2="{mem_bottom}"/>',
    ]
    for line in series:
        stroke = 2 if line.key == "group" else 1.2
        parts.append(
            f'<polyline class="series" data-series="{attr(line.key)}" fill="none" stroke="{colors[line.key]}" '
            f'stroke-width="{stroke}" points="{_polyline(line.points, x, y)}"/>'
        )
    if limit_bytes:
        py = y(limit_bytes)
        parts.append(
            f'<line class="limit" data-series="limit" x1="{LEFT}" x2="{x.px_hi}" y1="{py}" y2="{py}" '
            f'data-tip="limit {attr(_mib(limit_bytes))}"/>'
        )
    for index, label in enumerate(lane_labels):
        top = lanes_top + index * lane_h
        parts.append(f'<text class="lane-label" x="{LEFT - 6}" y="{top + 14}" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{x.px_hi}" y1="{top + lane_h}" y2="{top + lane_h}"/>')
    if tree_lanes:
        parts.extend(_tree_band(tree_lanes, spans, tree_top, x))
    for span in spans:
        top = (tree_top + span.lane * TREE_LANE_H if span.tree else lanes_top + span.lane * lane_h) + 3
        height = (TREE_LANE_H if span.tree else lane_h) - 6
        left = x(span.start_s)
        rect = (
            f'<rect class="{"tree-span" if span.tree else "task-span"} outcome-{attr(span.outcome)}" '
            f'data-task-id="{attr(span.task_id)}" '
            f'x="{left}" y="{top}" width="{max(x(span.end_s) - left, 3 if span.outcome == "killed" else 1.5)}" '
            f'height="{height}" '
            f'fill="{OUTCOME_COLORS.get(span.outcome, "#999")}" data-tip="{attr(span.tip)}"/>'
        )
        parts.append(f'<a class="flamegraph" href="{attr(span.link)}">{rect}</a>' if span.link else rect)
    for index, kill in enumerate(kills):
        px = x(kill.at_s)
        label_y = mem_top + 20 + (index % 3) * 12  # kills close together keep readable labels
        parts.append(
            f'<g class="kill-marker" data-tip="{attr(kill.tip)}">'
            f'<line class="kill-line" x1="{px}" x2="{px}" y1="{mem_top}" y2="{bottom}"/>'
            f'<line class="hit" x1="{px}" x2="{px}" y1="{mem_top}" y2="{bottom}"/>'
            f'<path d="M{px - 6},{mem_top} L{px + 6},{mem_top} L{px},{mem_top + 9} Z"/>'
            f'<text x="{px + 4}" y="{label_y}">{escape(kill.label)}</text></g>'
        )
    parts.append("</svg>")
    return legend(series, colors, bool(limit_bytes)) + "".join(parts)


TREE_GAP = 22  # room for the band's heading
TREE_LANE_H = 16


def _tree_band(lanes: list[TreeLane], spans: list[SpanMark], top: float, x: Scale) -> list[str]:
    """The band's heading, a shaded box around each tree of tasks, and each lane's label (indented by
    its depth under the task that started it) beside its bars: after them, or before them near the
    right edge (task names are longer than the process labels left of the axis)."""
    parts = [f'<text class="band-label" x="{x.px_lo + 4}" y="{top - 7}">tasks started by tasks</text>']
    start = 0
    for index in range(1, len(lanes) + 1):
        if index < len(lanes) and lanes[index].group == lanes[start].group:
            continue
        first = lanes[start]
        parts.append(
            f'<rect class="task-group" data-root-id="{attr(first.root_id)}" x="{x.px_lo}" '
            f'y="{top + start * TREE_LANE_H}" width="{round(x.px_hi - x.px_lo, 1)}" '
            f'height="{(index - start) * TREE_LANE_H}" fill="{"#f3f3f8" if first.group % 2 == 0 else "#e9eef6"}" '
            f'stroke="#b8c2d6" data-tip="{attr(first.label)} and the {index - start - 1} task(s) it started"/>'
        )
        start = index
    reach: dict[int, tuple[float, float]] = {}
    for span in spans:
        if span.tree:
            low, high = reach.get(span.lane, (span.start_s, span.end_s))
            reach[span.lane] = (min(low, span.start_s), max(high, span.end_s))
    for index, lane in enumerate(lanes):
        label = "\u2003" * max(lane.depth - 1, 0) + ("\u2514 " if lane.depth else "") + lane.label
        low, high = reach.get(index, (0.0, 0.0))
        after = x(high) + 4
        anchor, at = ("start", after) if after < x.px_hi - 140 else ("end", x(low) - 4)
        parts.append(
            f'<text class="tree-label" x="{at}" y="{top + index * TREE_LANE_H + 12}" '
            f'text-anchor="{anchor}">{escape(label)}</text>'
        )
    return parts


def _mib(value: float) -> str:
    return f"{value / MIB:.1f} MiB"


@dataclass
class Bar:
    label: str
    value: float
    tip: str
    css: str = ""  # e.g. "bad" for a bar drawn red


def bars_svg(bars: list[Bar], title: str, reference: float | None = None, reference_label: str = "") -> str:
    """Horizontal bars of byte values, with an optional reference line (the limit, a baseline)."""
    row_h, top = 24, 8
    label_w = 190
    height = top + len(bars) * row_h + 24
    high = max([b.value for b in bars] + [reference or 0, MIB]) * 1.05
    x = Scale(0.0, high, label_w, WIDTH - RIGHT - 70)
    parts = [
        f'<svg class="chart bars" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{attr(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for index, bar in enumerate(bars):
        py = top + index * row_h
        parts.append(f'<text class="tick" x="{label_w - 6}" y="{py + 15}" text-anchor="end">{escape(bar.label)}</text>')
        parts.append(
            f'<rect class="bar {attr(bar.css)}" x="{label_w}" y="{py + 3}" width="{max(x(bar.value) - label_w, 1)}" '
            f'height="{row_h - 6}" data-tip="{attr(bar.tip)}"/>'
        )
        parts.append(f'<text class="tick" x="{x(bar.value) + 4}" y="{py + 15}">{escape(_mib(bar.value))}</text>')
    if reference:
        px = x(reference)
        parts.append(f'<line class="limit" x1="{px}" x2="{px}" y1="{top}" y2="{height - 20}"/>')
        parts.append(
            f'<text class="tick limit-label" x="{px}" y="{height - 6}" text-anchor="middle">'
            f"{escape(reference_label)} {escape(_mib(reference))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def lines_svg(
    columns: list[str], rows: list[dict[str, float]], time_key: str, title: str, unit: str = ""
) -> tuple[str, dict[str, str]]:
    """Plain numeric lines over time (the load section): the SVG and each column's color."""
    height, top, bottom = 220, 10, 190
    duration = max((row.get(time_key, 0.0) for row in rows), default=1.0) or 1.0
    high = max((row.get(c, 0.0) for row in rows for c in columns), default=1.0) or 1.0
    x = Scale(0.0, duration, LEFT, WIDTH - RIGHT)
    y = Scale(0.0, nice_ticks(high)[-1], bottom, top)
    colors = {c: color_of(i) for i, c in enumerate(columns)}
    parts = [
        f'<svg class="chart lines" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{attr(title)}">',
        f"<title>{escape(title)}</title>",
        *_y_axis(y, x, high, unit),
        *_x_axis(x, top, bottom, duration),
    ]
    for column in columns:
        points = [(row[time_key], row[column]) for row in rows if column in row and time_key in row]
        parts.append(
            f'<polyline class="series" data-series="{attr(column)}" fill="none" stroke="{colors[column]}" '
            f'stroke-width="1.5" points="{_polyline(points, x, y)}"/>'
        )
    parts.append("</svg>")
    return "".join(parts), colors


@dataclass
class Column:
    low: float  # bytes, the column's range
    high: float
    count: int
    tip: str


def histogram_svg(columns: list[Column], title: str) -> str:
    """Counts of values by range (a distribution of exact peaks): a column per range, hover for its count."""
    height, top, bottom = 190, 10, 165
    x = Scale(columns[0].low, columns[-1].high, LEFT, WIDTH - RIGHT)
    most = max(5, *(column.count for column in columns))  # whole counts on the axis
    y = Scale(0.0, nice_ticks(most)[-1], bottom, top)
    parts = [
        f'<svg class="chart histogram" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{attr(title)}">',
        f"<title>{escape(title)}</title>",
        *_y_axis(y, x, most, ""),
    ]
    for index in range(5):
        value = x.lo + index * (x.hi - x.lo) / 4
        anchor = ("start", "middle", "middle", "middle", "end")[index]
        parts.append(f'<text class="tick" x="{x(value)}" y="{bottom + 14}" text-anchor="{anchor}">{_mib(value)}</text>')
    for column in (c for c in columns if c.count):
        left, right = x(column.low), x(column.high)
        parts.append(
            f'<rect class="bar peak-bin" x="{left}" y="{y(column.count)}" width="{max(right - left - 1, 1)}" '
            f'height="{max(bottom - y(column.count), 0)}" data-tip="{attr(column.tip)}"/>'
        )
    parts.append("</svg>")
    return "".join(parts)
