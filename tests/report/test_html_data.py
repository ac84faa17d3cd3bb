"""What the run page shows, extracted from a real run's record without a browser."""

from __future__ import annotations

import json
import os

import pytest
from oomlab.config.sizes import MIB
from oomlab.errors import BadInput
from oomlab.record.files import csv_rows
from oomlab.record.load import Counts, Latency, LoadSection, Points, Quantiles, RunSeries
from oomlab.report.html_data import adapt, downsample, lanes, load_view, memory_series, scrub


def _view(run_dir: str):
    with open(os.path.join(run_dir, "run.json")) as handle:
        return adapt(json.load(handle))


def test_adapt_reads_the_tasks_kills_and_limit_of_a_real_run(run_dir):
    view = _view(run_dir)
    assert (view.scenario, view.status, view.limit_bytes) == ("alloc", "complete", 256 * MIB)
    assert len(view.tasks) == 8 and len(view.kills) == 1
    kill = view.kills[0]
    assert kill.pid == 32255 and kill.task_name == "alloc.allocate"
    assert 0 < kill.at_s < view.duration_s
    assert kill.detected["kmsg"] < kill.detected["pidfd"]  # the kernel log line before the pidfd wakes


def test_a_killed_execution_ends_at_its_kill_and_has_no_peak(run_dir):
    view = _view(run_dir)
    killed = [task for task in view.tasks if task.outcome == "killed"]
    assert len(killed) == 1
    span = killed[0].spans[-1]
    assert span.killed and span.peak_rss_bytes is None
    assert span.end_s == view.kills[0].at_s
    finished = [s for task in view.tasks if task.outcome == "succeeded" for s in task.spans]
    assert finished and all(s.end_s > s.start_s and s.peak_rss_bytes for s in finished)


def test_adapt_survives_a_sparse_record():
    view = adapt({"run_id": "x", "tasks": [{"id": "t", "executions": []}], "kills": []})
    assert view.tasks[0].spans == [] and view.tasks[0].seconds is None and view.load is None


def test_scrub_hides_passwords_in_urls_at_any_depth():
    data = {"broker": "amqp://guest:s3cret@127.0.0.1:5672//", "nested": [{"url": "redis://:pw@host:6379/0"}]}
    cleaned = scrub(data)
    assert "s3cret" not in json.dumps(cleaned) and ":pw@" not in json.dumps(cleaned)
    assert cleaned["broker"] == "amqp://guest:***@127.0.0.1:5672//"
    assert scrub("redis+socket:///tmp/redis.sock") == "redis+socket:///tmp/redis.sock"


def test_downsample_keeps_the_sampled_extremes_in_time_order():
    points = [(i / 100, float((i * 37) % 101)) for i in range(10_000)]
    points[5_123] = (51.23, 1_000.0)
    kept = downsample(points, buckets=100)
    assert len(kept) <= 200
    assert max(v for _, v in kept) == 1_000.0 and min(v for _, v in kept) == 0.0
    assert [t for t, _ in kept] == sorted(t for t, _ in kept)
    assert downsample(points[:50], buckets=100) == points[:50]


def test_memory_series_group_first_then_main_and_peaks_kept(run_dir):
    view = _view(run_dir)
    series = memory_series(view, run_dir, buckets=50)
    assert series[0].key == "group" and series[1].label == "main 32100"
    raw_group_max = max(float(row["usage_bytes"]) for row in csv_rows(os.path.join(run_dir, "group.csv")))
    assert max(v for _, v in series[0].points) == raw_group_max == 256 * MIB
    assert all(len(s.points) <= 100 for s in series)


def test_lanes_are_the_processes_that_ran_tasks_in_order(run_dir):
    view = _view(run_dir)
    order = lanes(view)
    assert order[0] == 32255 and set(order) == {t.pid for t in view.tasks if t.spans}


def test_load_view_reads_figures_and_the_per_second_series():
    section = LoadSection(
        counts=Counts(sent=40, succeeded=39, killed=1),
        achieved_per_s=18.5,
        latency=Latency(queue_wait=Quantiles(0.1, 0.2, 0.4, 0.5, 0.9, 39)),
        series=RunSeries(
            offered=Points(1.0, [20.0, 20.0]), achieved=Points(1.0, [18.0, 19.0]), queue_depth=Points(2.0, [3.0])
        ),
        oom_kills=1,
    )
    load = load_view(section)
    figures = dict(load.figures)
    assert figures["tasks sent"] == 40 and figures["achieved (tasks/s)"] == 18.5 and figures["OOM kills"] == 1
    assert figures["queue wait p50 / p95 / p99 / max (s)"] == "0.1 / 0.4 / 0.5 / 0.9"
    assert {"t_s": 1.0, "achieved /s": 19.0} in load.rows and {"t_s": 0.0, "waiting in the queue": 3.0} in load.rows
    assert [title for title, _ in load.charts] == ["throughput over time", "backlog over time"]
    assert load_view(LoadSection()).charts == []  # nothing measured over time: nothing drawn


def test_a_load_section_that_does_not_fit_is_one_sentence():
    raw = {"run_id": "r", "config": {"scenario": "noop"}, "load": {"counts": {"sent": "many"}}}
    with pytest.raises(BadInput) as caught:
        adapt(raw)
    assert "load section does not fit" in caught.value.message and "counts.sent" in caught.value.message


def test_a_load_runs_stream_is_folded_into_exact_figures_per_name(load_run_dir):
    from oomlab.report.html import read_stream

    view = _view(load_run_dir)
    stream = read_stream(load_run_dir, view)
    assert stream is not None and stream.tasks == 8 and stream.note is None
    (figures,) = stream.names
    exact = sorted(t["peak_rss_bytes"] for t in _fixture_tasks() if t["peak_is_exact"])
    assert (figures.peaks["n"], figures.peaks["max"], figures.peaks["min"]) == (7, exact[-1], exact[0])
    assert figures.peaks["p50"] == exact[3] and sum(b.count for b in figures.bins) == 7
    assert [t.peak_rss_bytes for t in stream.largest] == exact[::-1]
    (killed,) = stream.killed
    assert killed.peak_rss_bytes == view.kills[0].rss_bytes  # the kernel's figure, from run.json's kill
    assert read_stream(os.path.dirname(load_run_dir), view) is None  # no stream: no section


def _fixture_tasks() -> list[dict]:
    from tests.report.conftest import FIXTURES

    with open(FIXTURES / "run-alloc" / "run.json") as handle:
        return json.load(handle)["tasks"]


def test_peak_bins_cover_every_value_in_at_most_thirty_ranges():
    from oomlab.report.html_data import peak_bins

    counts = {MIB * v: 1 + v % 3 for v in range(40, 400, 7)}
    bins = peak_bins(counts)
    assert len(bins) <= 30 and sum(b.count for b in bins) == sum(counts.values())
    assert bins[0].low == 40 * MIB and bins[-1].low <= max(counts) < bins[-1].high
    assert [b.count for b in peak_bins({4096 * 10: 5})] == [5]  # one value: one range a page wide
    assert peak_bins({}) == []


def test_a_load_runs_own_findings_are_among_the_runs():
    view = adapt(
        {"summary": {"findings": ["a run finding"]}, "load": {"findings": ["the worker could not keep up: 3.9/s"]}}
    )
    assert view.findings == ["a run finding", "the worker could not keep up: 3.9/s"]


def _tree_record(*tasks: tuple[str, str | None, str | None]) -> dict:
    """Tasks as (id, parent_id, root_id), in run order."""
    return {"tasks": [{"id": i, "name": f"t.{i}", "parent_id": p, "root_id": r} for i, p, r in tasks], "kills": []}


def test_tasks_started_by_tasks_sit_under_the_task_that_started_them():
    from oomlab.report.html_data import started_by, task_groups, task_tree

    view = adapt(
        _tree_record(
            ("s", None, "s"),  # the run sent it: its own root
            ("x", None, None),  # a task that started nothing
            ("p1", "s", "s"),
            ("p2", "s", "s"),
            ("cb", "p2", "s"),  # a chord's callback, sent by the last part
            ("late", "gone", "s"),  # its sender is not in the record: under the workflow's first task
            ("orphan", "gone", "gone"),  # nothing of its workflow is in the record: a root of its own
        )
    )
    assert started_by(view.tasks) == {"p1": "s", "p2": "s", "cb": "p2", "late": "s"}
    assert [(t.id, depth) for t, depth in task_tree(view.tasks)] == [
        ("s", 0), ("p1", 1), ("p2", 1), ("cb", 2), ("late", 1), ("x", 0), ("orphan", 0),
    ]  # fmt: skip
    assert [[t.id for t, _ in group] for group in task_groups(view.tasks)] == [["s", "p1", "p2", "cb", "late"]]


def test_a_loop_of_links_loses_and_repeats_no_task():
    from oomlab.report.html_data import task_groups, task_tree

    view = adapt(_tree_record(("a", "b", None), ("b", "a", None), ("c", None, None)))
    assert sorted(t.id for t, _ in task_tree(view.tasks)) == ["a", "b", "c"]
    assert [[t.id for t, _ in group] for group in task_groups(view.tasks)] == [["a", "b"]]


def test_a_run_whose_tasks_started_none_keeps_its_order_and_has_no_groups(run_dir):
    from oomlab.report.html_data import task_groups, task_tree

    view = _view(run_dir)
    assert [t for t, _ in task_tree(view.tasks)] == view.tasks and task_groups(view.tasks) == []
