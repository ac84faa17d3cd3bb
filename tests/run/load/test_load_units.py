"""Pure parts of load runs: shapes and their schedules, the histogram's stated error, bounded series,
the mix's reproducibility, per-name stats and the soak slope. Milliseconds, no worker."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from oomlab.config.load_mix import Kind, Mix, long_tail
from oomlab.config.load_shapes import (
    LoadShape,
    constant_schedule,
    parse_duration,
    parse_rate,
    parse_stages,
    ramp_schedule,
    shape_from_flags,
)
from oomlab.errors import BadInput
from oomlab.record.histogram import LogHistogram
from oomlab.record.load import Counts, LimitProjection, LoadSection, RecyclingSettings, SoakFindings, ThroughputDip
from oomlab.record.schema import Execution, TaskRecord
from oomlab.record.stream import line_of
from oomlab.run.load.follow import retain_open
from oomlab.run.load.series import MAX_POINTS, Series
from oomlab.run.load.soak import Budget, Soak
from oomlab.run.load.stats import NameStats, total_of


def test_parsers_read_what_users_write():
    assert parse_duration("10m") == 600 and parse_duration("500ms") == 0.5 and parse_duration("2") == 2
    assert parse_rate("50/s") == 50 and parse_rate("600/m") == 10 and parse_rate("7") == 7
    assert [(s.duration, s.target) for s in parse_stages("30s:50/s,5m:50/s,30s:0/s")] == [
        (30, 50),
        (300, 50),
        (30, 0),
    ]


@pytest.mark.parametrize(
    "flags",
    [
        {"rate": "50/s"},  # no duration
        {"rate": "fast", "duration": "10s"},
        {"rate": "50/s", "duration": "-1s"},
        {"stages": "30s"},
        {"stages": "10s:0/s"},
        {"rate": "5/s", "duration": "1s", "in_flight": 2},
        {"in_flight": 0, "duration": "1s"},
        {"in_flight": 2},
        {"rate": "5/s", "duration": "1s", "tasks": 10},
        {"duration": "10s"},
    ],
)
def test_bad_flags_are_one_sentence(flags):
    args = {"rate": None, "duration": None, "stages": None, "in_flight": None, "tasks": None, "seed": 0, **flags}
    with pytest.raises(BadInput) as caught:
        shape_from_flags(**args)
    assert "\n" not in caught.value.message and caught.value.message.strip()


def test_no_flag_is_the_plan():
    assert shape_from_flags(None, None, None, None, None, 0) is None


def test_constant_rate_sends_on_the_grid():
    due = list(constant_schedule(50, 10))
    assert len(due) == 500 and due[1] == pytest.approx(0.02) and due[-1] < 10


def test_ramp_follows_k6_stage_targets():
    """k6's ramping-arrival-rate: each stage goes linearly from the previous target (0 at first) to
    its own; the tasks sent equal the area under the rate, each due where the integral reaches it."""
    stages = parse_stages("10s:10/s,10s:10/s,10s:0/s")
    due = list(ramp_schedule(stages))
    assert len(due) == 50 + 100 + 50
    in_first = [t for t in due if t < 10]
    assert len(in_first) == 50 and sum(1 for t in in_first if t < 5) == pytest.approx(13, abs=1)  # 5²/2·1 = 12.5
    gaps = [b - a for a, b in itertools.pairwise(t for t in due if 10 <= t < 20)]
    assert all(g == pytest.approx(0.1, abs=1e-6) for g in gaps)
    assert due == sorted(due) and due[-1] < 30


def test_shape_round_trips_through_the_config():
    shape = shape_from_flags(None, None, "5s:20/s,5s:0/s", None, None, 3)
    assert LoadShape.from_dict(shape.as_dict()) == shape
    assert shape.asked_per_s == pytest.approx(10)


def test_histogram_quantiles_within_the_stated_error():
    rng = random.Random(7)
    values = [rng.lognormvariate(-4, 1.5) for _ in range(50_000)]
    histogram = LogHistogram()
    for value in values:
        histogram.record(value)
    ordered = sorted(values)
    for q in (0.5, 0.9, 0.95, 0.99):
        exact = ordered[math.ceil(q * len(ordered)) - 1]
        assert abs(histogram.quantile(q) - exact) <= histogram.relative_error * exact * 1.0001
    assert histogram.max == max(values) and histogram.quantile(1.0) == max(values)
    assert len(histogram.counts) < 1500  # fixed memory: buckets, not values


def test_histograms_merge_exactly():
    a, b, both = LogHistogram(), LogHistogram(), LogHistogram()
    for index in range(1, 1000):
        (a if index % 2 else b).record(index / 1000)
        both.record(index / 1000)
    a.merge(b)
    assert a.summary() == both.summary()


def test_series_stays_bounded_over_a_long_run():
    series = Series()
    for second in range(3 * MAX_POINTS):
        series.add(second + 0.5, 2)
    assert len(series.values) <= MAX_POINTS and series.width == 4
    assert sum(series.values) == 2 * 3 * MAX_POINTS and set(series.per_second()) == {2.0}


def test_names_series_add_up_into_the_total_whatever_their_widths():
    long_name, short_name = NameStats(), NameStats()
    for second in range(3 * MAX_POINTS):  # widened to 4 s buckets
        long_name.offered.add(second + 0.5, 1)
    for second in range(10):  # sent only at the start: 1 s buckets
        short_name.offered.add(second + 0.5, 3)
    for order in ((long_name, short_name), (short_name, long_name)):
        total = total_of({str(index): stats for index, stats in enumerate(order)})
        assert sum(total.offered.values) == 3 * MAX_POINTS + 30 and len(total.offered.values) <= MAX_POINTS
        assert total.offered.values[:3] == [16.0, 16.0, 10.0]  # 4 + 12, 4 + 12, 4 + 6 in its 4 s buckets
    assert long_name.offered.width == 4 and short_name.offered.width == 1  # the names' own are untouched
    twice = total_of({"a": long_name, "b": long_name}).offered  # one width: bucket by bucket
    assert twice.width == 4 and twice.values == [2 * value for value in long_name.offered.values]


def test_mix_is_reproducible_and_weighted():
    mix = Mix((Kind("a", 3, lambda rng: (rng.random(),)), Kind("b", 1, lambda rng: ())))
    first = list(itertools.islice(mix.calls(5), 4000))
    assert first == list(itertools.islice(mix.calls(5), 4000))
    assert first != list(itertools.islice(mix.calls(6), 4000))
    share = sum(1 for call in first if call.task == "a") / len(first)
    assert share == pytest.approx(0.75, abs=0.03)


def test_long_tail_has_its_median_and_tail():
    draw = long_tail(10, 40, cap=100)
    rng = random.Random(1)
    values = sorted(draw(rng) for _ in range(20_000))
    assert values[len(values) // 2] == pytest.approx(10, rel=0.05)
    assert values[int(0.99 * len(values))] == pytest.approx(40, rel=0.1)
    assert values[-1] <= 100


def test_stats_rates_and_totals():
    stats = NameStats()
    for index in range(101):
        stats.sent(index * 0.02)  # 50/s
    for index in range(101):
        stats.final("succeeded", 0.1 + index * 0.025, {"queue_wait": 0.01, "run_time": 0.02, "end_to_end": 0.03}, 1000)
    assert stats.offered_per_s == pytest.approx(50) and stats.achieved_per_s == pytest.approx(40)
    total = total_of({"x": stats, "y": NameStats()})
    assert total.counts["sent"] == 101 and total.latency["queue_wait"].quantile(0.5) == pytest.approx(0.01, rel=0.01)


def test_soak_slope_and_projection():
    soak = Soak(limit_bytes=256 * 2**20)
    for task in range(1, 11):
        for pid in (1, 2):
            soak.observe(pid, task * 0.1, 60 * 2**20 + task * 4 * 2**20)
    assert soak.per_task_slope() == pytest.approx(4 * 2**20)
    projection = soak.project(tasks_done=20, group_usage=200 * 2**20, rate=10)
    assert projection is not None
    assert projection.limit_reached_at_task == 34 and projection.seconds_from_now == pytest.approx(1.4)
    assert soak.significant()
    budget = Budget(256 * 2**20, 2, 40 * 2**20, 60 * 2**20, 2 * 2**20, None, 0.1)
    settings = budget.settings(4 * 2**20, 10)
    assert settings.worker_max_tasks_per_child == (108 - 2 - 60) // 4
    assert "not measured" in settings.throughput_cost_basis and settings.throughput_cost_percent is None


def test_probe_retention_keeps_only_open_tasks():
    records = [
        {"ev": "child_init", "pid": 1},
        {"ev": "prerun", "task_id": "a", "pid": 1},
        {"ev": "postrun", "task_id": "a", "pid": 1},
        {"ev": "prerun", "task_id": "b", "pid": 1},
    ]
    assert retain_open(records) == [records[0], records[3]]


def test_a_plan_run_gets_the_same_load_figures_from_its_records():
    from oomlab.run.load.from_tasks import load_from_tasks

    def task(name: str, sent: float, started: float, finished: float, peak: int | None = None) -> TaskRecord:
        run = Execution(1, started, started, None, finished_mono=finished)
        return TaskRecord(
            name, name, "", [], sent, "succeeded", peak_rss_bytes=peak, peak_is_exact=bool(peak), executions=[run]
        )

    records = [task("a", 100.0 + i, 100.5 + i, 100.75 + i, 1000) for i in range(10)]
    records.append(task("b", 105.0, 105.0, 105.1))  # a pytest session's: sent when it started
    tasks = [line_of(t) for t in records]
    load = load_from_tasks(tasks, 99.0, kills=0)
    assert load.latency.queue_wait.max == pytest.approx(0.5)
    assert load.by_task["a"].achieved_per_s == pytest.approx(1.0)
    assert load.by_task["b"].latency.queue_wait.n == 0  # not sent by oomlab: unknown, not 0
    assert load.shape is None and load.soak is None  # a plan run has figures, not a load run's own


def test_a_load_run_keeps_the_events_attribution_reads_and_a_minute_of_heartbeats():
    from oomlab.record.schema import CeleryEvent
    from oomlab.run.load.figures import HEARTBEATS, kept_events

    beats = [CeleryEvent("worker-heartbeat", float(i), None, None, "w") for i in range(100)]
    lost = CeleryEvent("task-failed", 1.0, None, None, "w", fields={"exception": "WorkerLostError('x')"})
    others = [CeleryEvent("task-succeeded", 1.0, None, None, "w"), CeleryEvent("task-failed", 1.0, None, None, "w")]
    events = [*beats, lost, *others, CeleryEvent("worker-offline", 2.0, None, None, "w")]
    keep = kept_events(events)
    kept = [event for event in events if keep(event)]
    assert kept == [*beats[-HEARTBEATS:], lost, events[-1]]


def test_throughput_dip_sets_seconds_with_a_replacement_against_the_others():
    from oomlab.run.load.replacements import throughput_dip

    achieved, exits = Series(), Series()
    for second in range(10):
        achieved.add(second + 0.5, 50 if second not in (3, 7) else 30)
    exits.add(3.2)
    exits.add(7.9)
    dip = throughput_dip(exits, achieved)
    assert dip == ThroughputDip(
        per_s_in_seconds_with_a_replacement=30.0, per_s_otherwise=50.0, dip_percent=40.0, seconds_with_a_replacement=2
    )
    assert throughput_dip(Series(), achieved) is None


def test_throughput_dip_reads_a_long_runs_wider_buckets():
    """Recycling that stopped early (its exits' buckets still a second wide) in a run past MAX_POINTS
    seconds (the achieved series widened to 2 s): read at 2 s, not given up."""
    from oomlab.run.load.replacements import throughput_dip

    achieved, exits = Series(), Series()
    for second in range(MAX_POINTS + 10):
        achieved.add(second + 0.5, 30 if second in (6, 7) else 50)
    exits.add(6.2)
    exits.add(7.9)
    assert achieved.width == 2 and exits.width == 1
    dip = throughput_dip(exits, achieved)
    assert dip == ThroughputDip(
        per_s_in_seconds_with_a_replacement=30.0, per_s_otherwise=50.0, dip_percent=40.0, seconds_with_a_replacement=2
    )


def test_a_clean_load_run_may_be_the_first_baseline_and_a_failed_one_may_not():
    from oomlab.config.options import RunConfig
    from oomlab.record.schema import RunRecord, Spread
    from oomlab.workflows.gate.worthiness import record_is_baseline_worthy

    record = RunRecord(run_id="r", config=RunConfig("noop", "256MiB", 256 * 2**20, 2), status="complete")
    record.load = LoadSection(counts=Counts(sent=10))
    record.summary.outcomes = {"succeeded": 10, "failed": 0, "killed": 0}
    record.summary.peak_rss_bytes = Spread(p50=1, p95=1, max=1, n=10)
    assert record_is_baseline_worthy(record) is None
    record.summary.outcomes["failed"] = 2  # a task that raised still ran to its end: measured
    assert record_is_baseline_worthy(record) is None
    record.summary.outcomes["killed"] = 2
    assert "2 task(s) did not succeed (killed)" in (record_is_baseline_worthy(record) or "")


def test_a_killed_childs_replacement_is_no_cost_of_recycling():
    from oomlab.run.load.replacements import Replacements

    replacements = Replacements()
    for pid in (1, 2):
        replacements.child_started(pid)
    replacements.child_exited(1, 10.0, recycled=False, work_waiting=True)  # OOM-killed
    replacements.child_exited(2, 20.0, recycled=True, work_waiting=True)  # worker_max_tasks_per_child
    for pid, at in ((3, 13.0), (4, 20.25)):
        replacements.child_started(pid)
        replacements.task_started(pid, at)
    assert (replacements.recycled, replacements.lost) == (1, 1)
    assert replacements.cost.n == 1 and replacements.cost.quantile(0.5) == pytest.approx(0.25, rel=0.05)
    assert sum(replacements.exits.values) == 1  # the dip is set against recycling alone


def _soak(killed_at: int | None) -> SoakFindings:
    first = LimitProjection(11, 100 * 2**20, 4 * 2**20, 41, 2.5)
    return SoakFindings(
        growth_per_1000_tasks_per_child_bytes=4000 * 2**20,
        projection=LimitProjection(120, 200 * 2**20, 4 * 2**20, 109, 1.0),
        first_projection=first,
        first_kill_at_task=killed_at,
        significant=True,
        first_projection_error_percent=-4.7 if killed_at else None,
        recycling=RecyclingSettings(100 * 2**20, 9, 90000),
    )


def test_after_a_kill_the_soak_finding_sets_its_first_projection_against_it():
    from oomlab.run.load.replacements import Replacements
    from oomlab.run.load.section import _growth

    [killed] = _growth(_soak(43), 4000 * 2**20, Replacements(), kills=2)
    assert "projected at task 11: the limit at task 41; the first kill came at task 43 (\u22124.7 %)" in killed
    assert "task 109" not in killed and "reaches its limit" not in killed
    assert "worker_max_tasks_per_child=9" in killed
    [ahead] = _growth(_soak(None), 4000 * 2**20, Replacements(), kills=0)
    assert "reaches its limit at task 109 (in about 1 s)" in ahead


def test_a_task_sent_by_a_task_is_a_flight_of_its_own_name_with_its_links(tmp_path):
    import json

    from oomlab.config.scenario import TaskCall
    from oomlab.run.load.book import Book

    book = Book(str(tmp_path), 10.0, lambda _: None)
    book.open(TaskCall("w.start", ()), None)
    part = book.adopt("p1", "w.part", book.start + 0.1, ("s1", "s1", "g1"))
    assert part is not None and book.adopt("p1", "w.part", book.start + 0.2, ("s1", "s1", "g1")) is None
    assert (len(book.flights), book.own_in_flight) == (2, 1)  # a closed loop counts only its own
    book.final(part, "succeeded", "SUCCESS", None, book.start + 0.5, 50 << 20)
    assert book.adopt("p1", "w.part", book.start + 0.6, ("s1", "s1", "g1")) is None  # ended: not opened again
    book.stream.close()
    (line,) = [json.loads(text) for text in (tmp_path / "tasks.jsonl").read_text().splitlines()]
    assert (line["parent_id"], line["root_id"], line["group_id"], line["sent_by"]) == ("s1", "s1", "g1", "worker")
    counts = book.by_name["w.part"].figures().counts
    assert (counts.sent, counts.sent_by_tasks, counts.succeeded) == (1, 1, 1)
    assert book.sent_in_window == 0  # the load's own offered rate is what it sent
