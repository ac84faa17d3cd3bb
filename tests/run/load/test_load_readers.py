"""Every reader of a run's tasks on one real load run: its tasks are only in tasks.jsonl, and the gate
(baseline save and gate), the report, recommend's profile and split, and the run assertion must each
see their exact per-task peaks. Then the same run with a line that is not a task: each reader says so.

One real run of alloc (a closed loop of 2, 24 tasks of which some ask for more than the limit and are
OOM-killed; ~10 s here) serves the module."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
from oomlab.config.sizes import format_size
from oomlab.errors import EXIT_OK, EXIT_REGRESSION
from oomlab.record.schema import load_run
from oomlab.record.stream import RunTasks
from oomlab.testing.assertions import OomlabAssertionError, assert_run_peak_rss_below
from oomlab.workflows.recommend.profile import profile_from_run
from oomlab.workflows.recommend.split import kind_costs

from tests.conftest import oomlab_cmd, run_dir_from

pytestmark = pytest.mark.integration
TASKS = 24


def _oomlab(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(oomlab_cmd(*args), capture_output=True, text=True, timeout=150)
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture(scope="module")
def load_run_dir(tmp_path_factory) -> str:
    results = tmp_path_factory.mktemp("results")
    done = _oomlab(
        "run", "alloc", "--param", "hold=0.1", "--in-flight", "2", "--tasks", str(TASKS), "--results", str(results)
    )
    assert done.returncode == EXIT_OK, done.stderr
    run_dir = run_dir_from(done.stdout)
    assert run_dir is not None
    return run_dir


def _exact(run_dir: str) -> list:
    return [task for task in RunTasks(run_dir) if task.peak_is_exact]


def test_the_stream_holds_every_task_and_the_record_none(load_run_dir):
    record = load_run(load_run_dir)
    tasks = RunTasks(load_run_dir, record)
    lines = list(tasks)
    assert record.tasks == [] and len(lines) == record.load.counts.sent == TASKS
    assert (tasks.check.malformed, tasks.check.cut_last_line) == (0, False)
    exact = [t.peak_rss_bytes for t in lines if t.peak_is_exact]
    assert max(exact) == record.load.peak_rss_bytes.max  # the section's histogram keeps the max exact
    killed = [t for t in lines if t.outcome == "killed"]
    assert killed, "alloc's mix (seed 0) sends over-limit tasks: some must be killed"
    assert all(t.peak_rss_bytes and not t.peak_is_exact for t in killed)  # the kernel's RSS at the kill


def test_baseline_and_gate_read_the_streams_exact_peaks(load_run_dir, tmp_path):
    exact = sorted(t.peak_rss_bytes for t in _exact(load_run_dir))
    baseline = tmp_path / "baseline.json"
    done = _oomlab("baseline", "save", load_run_dir, str(baseline), "--force")  # --force: the run had kills
    assert done.returncode == EXIT_OK, done.stderr
    saved = json.loads(baseline.read_text())["tasks"]["alloc.allocate"]
    assert (saved["n"], saved["max"], saved["min"]) == (len(exact), exact[-1], exact[0])
    assert saved["p95"] == exact[max(0, -(-95 * len(exact) // 100) - 1)]  # nearest rank, exact
    done = _oomlab("gate", "--baseline", str(baseline), "--current", load_run_dir, "--fail", "peak:1%")
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    lowered = {**saved, "max": exact[-1] // 2}
    baseline.write_text(json.dumps({**json.loads(baseline.read_text()), "tasks": {"alloc.allocate": lowered}}))
    done = _oomlab("gate", "--baseline", str(baseline), "--current", load_run_dir, "--fail", "peak:10%")
    assert done.returncode == EXIT_REGRESSION and format_size(exact[-1]) in done.stdout


def test_the_report_shows_the_largest_tasks_exact_peaks(load_run_dir):
    assert _oomlab("report", load_run_dir).returncode == EXIT_OK
    with open(os.path.join(load_run_dir, "report.html"), encoding="utf-8") as handle:
        page = handle.read()
    largest = max(_exact(load_run_dir), key=lambda t: t.peak_rss_bytes)
    rows = re.findall(r'<tr data-task-id="([^"]+)"', page[page.index('id="largest-tasks"') :])
    assert rows[0] == largest.id and f">{format_size(largest.peak_rss_bytes)}<" in page
    killed = sum(1 for t in RunTasks(load_run_dir) if t.outcome == "killed")
    assert f"{killed} killed task(s)" in page


def test_recommends_profile_and_split_read_the_stream(load_run_dir):
    exact = _exact(load_run_dir)
    profile = profile_from_run(load_run_dir, load_run(load_run_dir))
    assert profile.tasks == TASKS and profile.tasks_note is None
    assert sorted(profile.marginal_peaks) == sorted(t.peak_above_start_bytes for t in exact)
    assert profile.child_start_rss_bytes > 0  # the children's start RSS, from the stream's lines
    (kind,) = kind_costs(RunTasks(load_run_dir))
    assert kind.tasks == TASKS and kind.peak_above_start_bytes == max(t.peak_above_start_bytes for t in exact)


def test_the_run_assertion_sees_every_streamed_task(load_run_dir):
    largest = max(_exact(load_run_dir), key=lambda t: t.peak_rss_bytes)
    with pytest.raises(OomlabAssertionError) as failure:
        assert_run_peak_rss_below(load_run_dir, "1GiB")  # every task fits, but some were OOM-killed
    message = str(failure.value)
    assert "were OOM-killed" in message and largest.id in message and load_run_dir in message
    with pytest.raises(OomlabAssertionError, match=r"peaked at or above"):
        assert_run_peak_rss_below(load_run_dir, largest.peak_rss_bytes)
    with pytest.raises(OomlabAssertionError, match="no task"):
        assert_run_peak_rss_below(load_run_dir, "1GiB", name="nothing.like.it")


def test_a_line_that_is_not_a_task_is_said_by_every_reader(load_run_dir, tmp_path):
    run_dir = str(tmp_path / "run")
    shutil.copytree(load_run_dir, run_dir)
    with open(os.path.join(run_dir, "tasks.jsonl"), "a") as handle:
        handle.write('{"id": "x", "name": "alloc.allocate", "peak_rss_bytes": "huge"}\n')
    done = _oomlab("gate", "--baseline", str(tmp_path / "b.json"), "--current", run_dir)
    assert done.returncode == EXIT_REGRESSION and "1 malformed line(s) skipped" in done.stdout, done.stdout
    assert not (tmp_path / "b.json").exists()  # never the first baseline
    with pytest.raises(OomlabAssertionError, match=r"1 malformed line\(s\) skipped"):
        assert_run_peak_rss_below(run_dir, "1GiB", name="alloc.allocate")
    assert "malformed" in (profile_from_run(run_dir, load_run(run_dir)).tasks_note or "")
    assert _oomlab("report", run_dir).returncode == EXIT_OK
    with open(os.path.join(run_dir, "report.html"), encoding="utf-8") as handle:
        assert "1 malformed line(s) skipped" in handle.read()


def test_the_parquet_export_holds_every_streamed_task(load_run_dir, tmp_path):
    import pandas as pd

    out = tmp_path / "tasks.parquet"
    done = _oomlab("export", load_run_dir, "--parquet", str(out))
    assert done.returncode == EXIT_OK and done.stdout.strip() == str(out), done.stderr
    frame = pd.read_parquet(out)
    exact = _exact(load_run_dir)
    assert len(frame) == TASKS and int(frame["peak_is_exact"].sum()) == len(exact)
    assert frame.loc[frame["peak_is_exact"], "peak_rss_bytes"].max() == max(t.peak_rss_bytes for t in exact)
