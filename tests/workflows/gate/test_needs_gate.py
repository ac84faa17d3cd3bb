"""The gate's `needs` statistic and the default growth check judging it where page cache is the
difference: a task that only wrote or read a bigger file passes, a task whose own memory grew fails,
and a baseline saved before `needs` was recorded still works."""

from __future__ import annotations

import json

import pytest
from oomlab.workflows.gate.baseline import load_baseline
from oomlab.workflows.gate.flow import DEFAULT_THRESHOLDS
from oomlab.workflows.gate.stats import TaskStats, stats_of
from oomlab.workflows.gate.thresholds import parse_threshold
from oomlab.workflows.gate.verdict import compare

MIB = 1 << 20
DEFAULT = [parse_threshold(text) for text in DEFAULT_THRESHOLDS]


def _task(growth: int, needs: int | None) -> TaskStats:
    stats = stats_of([60 * MIB + growth])
    stats.growth_max, stats.needs_max = growth, needs
    return stats


def test_growth_that_may_be_page_cache_still_fails_and_the_notice_offers_needs():
    """needs is sampled (a short task's peak can fall between samples), so it never overrules growth."""
    result = compare({"t": _task(104 * MIB, 5 * MIB)}, {"t": _task(155 * MIB, 5 * MIB)}, DEFAULT, {})
    assert [(c.threshold, c.failed) for c in result.checks] == [("growth:10%,+2.0 MiB", True)]
    assert any("may be page cache" in notice and "needs:10%,+2.0 MiB" in notice for notice in result.notices)
    asked = compare(
        {"t": _task(104 * MIB, 5 * MIB)}, {"t": _task(155 * MIB, 5 * MIB)}, [parse_threshold("needs:10%,+2MiB")], {}
    )
    assert [(c.threshold, c.failed) for c in asked.checks] == [("needs:10%,+2.0 MiB", False)]


def test_growth_of_what_the_task_needs_still_fails():
    result = compare({"t": _task(20 * MIB, 20 * MIB)}, {"t": _task(40 * MIB, 40 * MIB)}, DEFAULT, {})
    assert [(c.threshold, c.failed) for c in result.checks] == [("growth:10%,+2.0 MiB", True)]
    asked = compare(
        {"t": _task(20 * MIB, 5 * MIB)}, {"t": _task(20 * MIB, 9 * MIB)}, [parse_threshold("needs:+2MiB")], {}
    )
    assert [(c.threshold, c.failed) for c in asked.checks] == [("needs:+2.0 MiB", True)]


def test_without_needs_in_both_runs_growth_decides(tmp_path):
    result = compare({"t": _task(104 * MIB, None)}, {"t": _task(155 * MIB, 5 * MIB)}, DEFAULT, {})
    assert [(c.threshold, c.failed) for c in result.checks] == [("growth:10%,+2.0 MiB", True)]
    # a baseline saved before tasks carried needs: no needs_* keys, read as None
    old = {k: v for k, v in vars(_task(104 * MIB, None)).items() if not k.startswith("needs")}
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"schema": "oomlab.baseline/1", "source_run": "r", "tasks": {"t": old}}))
    stats, _ = load_baseline(str(path))
    assert stats["t"].get("needs") is None and stats["t"].get("growth") == 104 * MIB


@pytest.mark.integration
def test_a_task_reading_a_bigger_file_passes_a_needs_gate(oomlab, tmp_path):
    """memory_kinds' file variant: its tree's growth is the page cache of the file it reads; the default
    gate holds it to growth and says it may be page cache, `--fail needs:...` judges what it needs."""
    runs = [oomlab("run", "memory-kinds", "--variant", "file", "--param", f"mib={mib}") for mib in (16, 48)]
    assert [r.code for r in runs] == [0, 0], runs[-1].stderr
    baseline = str(tmp_path / "baseline.json")
    assert oomlab("baseline", "save", runs[0].run_dir, baseline).code == 0
    gate = oomlab("gate", "--baseline", baseline, "--current", runs[1].run_dir)
    assert gate.code == 7 and "may be page cache" in gate.stdout, gate.stdout
    needs = oomlab("gate", "--baseline", baseline, "--current", runs[1].run_dir, "--fail", "needs:10%,+2MiB")
    assert needs.code == 0, needs.stdout
    raw = oomlab("gate", "--baseline", baseline, "--current", runs[1].run_dir, "--fail", "file_end:10%,+2MiB")
    assert raw.code == 7, raw.stdout  # the page cache itself is still there to gate on when asked
