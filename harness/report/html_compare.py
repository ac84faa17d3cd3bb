"""`--compare`'s page: the variants side by side, figures in one table and each variant's timeline
on the same time and memory scales, so bad and fixed can be judged by eye."""

from __future__ import annotations

import os
from dataclasses import dataclass
from html import escape

from oomlab.config.sizes import MIB, format_size
from oomlab.report.html_data import RunView, Series
from oomlab.report.html_page import REPORT_FILE, bullet_list, cell, relative_link, section, table
from oomlab.report.html_run import detector_text, timeline_figure

SIDE_BY_SIDE_WIDTH = 600


def _stat(view: RunView, key: str, stat: str) -> int | float | None:
    """A quantile from the summary; detection_seconds nests one level deeper (per detector)."""
    found = (view.summary.get(key) or {}).get(stat)
    return found.get("p50") if isinstance(found, dict) else found


def _figures(view: RunView) -> dict[str, str]:
    """What the side-by-side table shows for one variant, by row name."""
    outcomes = view.summary.get("outcomes") or {}
    fraction = view.summary.get("group_peak_fraction")
    rows = {"status": view.status, "tasks": str(view.task_count)}
    rows.update({name.replace("_", " "): str(count) for name, count in outcomes.items()})
    for stat in ("p50", "p95", "max"):
        rows[f"task peak RSS {stat}"] = format_size(_stat(view, "peak_rss_bytes", stat))
    group_peak = format_size(view.summary.get("group_peak_bytes"))
    rows["group peak (of the limit)"] = group_peak + (f" ({fraction:.0%})" if isinstance(fraction, int | float) else "")
    rows["OOM kills"] = str(len(view.kills))
    rows["oomlab saw a kill (median)"] = detector_text(_stat(view, "detection_seconds", "oomlab"))
    rows["main process peak"] = format_size(view.summary.get("main_peak_rss_bytes"))
    rows["child USS max"] = format_size(_stat(view, "child_uss_bytes", "max"))
    rows["children recycled"] = str(view.summary.get("children_recycled", 0))
    rows["findings"] = str(len(view.findings))
    return rows


@dataclass
class VariantRun:
    variant: str
    run_dir: str
    view: RunView | None  # None: its run.json could not be read
    series: list[Series]


def side_by_side(runs: list[VariantRun]) -> str:
    per_variant = [_figures(run.view) for run in runs if run.view is not None]
    names = list(dict.fromkeys(name for figures in per_variant for name in figures))
    rows = []
    for name in names:
        row = [cell(name)]
        for figures in per_variant:
            shown = figures.get(name, "-")
            row.append(
                cell(shown, css="bad-text" if name in ("killed", "OOM kills") and shown not in ("0", "-") else "")
            )
        rows.append(row)
    variants = [run.variant for run in runs if run.view is not None]
    return table(["", *variants], rows, "variants", numeric=variants, sortable=False)


def compare_sections(page_dir: str, runs: list[VariantRun]) -> list[str]:
    present = [(run, run.view) for run in runs if run.view is not None]
    missing = [f"{run.variant}: no readable run.json in {run.run_dir}" for run in runs if run.view is None]
    duration = max([view.duration_s for _, view in present] + [0.001])
    high = max(
        [v for run, _ in present for s in run.series for _, v in s.points]
        + [(view.limit_bytes or 0) * 1.08 for _, view in present]
        + [MIB]
    )
    panels = []
    for run, view in present:
        link = relative_link(page_dir, os.path.join(run.run_dir, REPORT_FILE), f"run {view.run_id}")
        panels.append(
            f"<div><h3>{escape(run.variant)} · {link}</h3>"
            f"{timeline_figure(view, run.series, duration, high, SIDE_BY_SIDE_WIDTH)}"
            f"{bullet_list(view.findings, 'findings')}</div>"
        )
    return [
        section(
            "Variants side by side",
            side_by_side(runs) + (bullet_list(missing) if missing else ""),
            "variants-section",
        ),
        section(
            "Memory over time, per variant",
            f'<div class="grid-2">{"".join(panels)}</div>',
            "timelines",
            "Same time and memory scales for every variant. Hover spans and kill markers; findings below each.",
        ),
    ]
