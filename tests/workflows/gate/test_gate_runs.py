"""The gate on runs that did not do their work, and on growth: a lost worker, a timeout, a kill
of a process running no task or another scenario fail it and never become a baseline; an unchanged
run passes three times in a row."""

from __future__ import annotations

import json
import os

import pytest
from oomlab.config.options import RunConfig
from oomlab.record.schema import RunRecord, TaskRecord
from oomlab.workflows.gate.run_checks import RunFacts, run_problems
from oomlab.workflows.gate.stats import task_stats


def test_run_problems_name_each_reason():
    good = RunFacts("alloc", "complete", None, 0, 0)
    assert run_problems(good, "alloc") == []
    bad = RunFacts("alloc", "worker_lost", "the worker's main process exited", 1, 3)
    reasons = [c.threshold for c in run_problems(bad, "spike")]
    assert reasons == ["complete", "oom", "started", "scenario"]
    assert all(c.failed and c.detail for c in run_problems(bad, "spike"))


def test_growth_is_the_trees_where_exact():
    def task(peak, above, tree=None):
        return TaskRecord(
            id=str(peak), name="t", label="", args=[], sent_mono=0.0, peak_rss_bytes=peak, peak_is_exact=True,
            peak_above_start_bytes=above, tree_peak_is_exact=tree is not None, tree_peak_above_start_bytes=tree,
        )  # fmt: skip

    record = RunRecord(run_id="r", config=RunConfig("t", "1MiB", 1, 1), tasks=[task(100, 10, 70), task(120, 30)])
    stats = task_stats(record)["t"]
    assert (stats.get("growth"), stats.get("peak")) == (70, 120)


@pytest.mark.integration
def test_the_gate_fails_a_run_that_lost_its_worker_and_never_saves_it(oomlab, tmp_path):
    baseline = str(tmp_path / "baseline.json")
    lost = oomlab("run", "worker-death", "--variant", "bad")
    assert lost.code == 11  # EXIT_WORKER_LOST
    first = oomlab("gate", "--baseline", baseline, "--current", lost.run_dir)
    assert first.code == 7 and not os.path.exists(baseline), first.stdout
    assert "status worker_lost" in first.stdout and "never started" in first.stdout
    refused = oomlab("baseline", "save", lost.run_dir, baseline)
    assert refused.code == 2 and "cannot be a baseline" in refused.stderr
    fixed = oomlab("run", "worker-death", "--variant", "fixed")
    assert oomlab("gate", "--baseline", baseline, "--current", fixed.run_dir).code == 0
    assert json.load(open(baseline))["scenario"] == "worker-death"
    for _ in range(3):  # unchanged: passes every time, on growth
        again = oomlab("run", "worker-death", "--variant", "fixed")
        check = oomlab("gate", "--baseline", baseline, "--current", again.run_dir, "--fail", "growth:+2MiB")
        assert check.code == 0, check.stdout
    other = oomlab("run", "alloc", "--param", "over=0", "--tasks", "2")
    mismatch = oomlab("gate", "--baseline", baseline, "--current", other.run_dir)
    assert mismatch.code == 7 and "the baseline is of worker-death" in mismatch.stdout
    # another scenario's tasks are not compared with the baseline's, even where their names meet
    assert "no task compared" in mismatch.stdout and "REGRESSION" not in mismatch.stdout, mismatch.stdout
    lost_again = oomlab("gate", "--baseline", baseline, "--current", lost.run_dir)
    assert lost_again.code == 7
