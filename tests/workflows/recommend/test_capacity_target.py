"""Capacity for a traffic target, pure planning: replica arithmetic, the queue-wait model, the
pools' safe concurrency, split queues, the inverse mode's limit and the Kubernetes hand-over."""

import json
import math
from dataclasses import asdict, replace

import pytest
from oomlab.record.schema import Execution, TaskRecord
from oomlab.record.stream import TaskLine, line_of
from oomlab.report.capacity import inverse_lines, split_lines, target_lines
from oomlab.workflows.recommend.capacity import plan_capacity
from oomlab.workflows.recommend.fleet import Candidate, cheapest, fleet_row, fleet_table, replicas_for
from oomlab.workflows.recommend.inverse import limit_for, trials_verdict
from oomlab.workflows.recommend.pools import pools_allowed, safe_concurrency
from oomlab.workflows.recommend.prove import Trial
from oomlab.workflows.recommend.queueing import NEVER, erlang_c, queue_wait_quantile
from oomlab.workflows.recommend.split import Demand, dominant_kind, kind_costs, split_plan
from oomlab.workflows.recommend.target import Target, TargetPlan
from oomlab.workflows.recommend.throughput import saturating_rate

from tests.workflows.recommend.test_capacity import profile

MIB = 1024 * 1024


def test_replicas_are_the_rate_with_headroom_over_one_replicas_throughput():
    assert replicas_for(100, 12.5, 0.0) == 8
    assert replicas_for(100, 12.5, 0.2) == math.ceil(120 / 12.5) == 10
    assert replicas_for(1, 50, 0.2) == 1  # never fewer than one


def test_erlang_c_matches_the_textbook_values():
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = utilisation
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)  # M/M/2 at A = 1
    assert erlang_c(2, 2.0) == 1.0  # saturated


def test_queue_wait_grows_towards_saturation_and_is_unbounded_past_it():
    light = queue_wait_quantile(4, 20.0, 5.0)
    heavy = queue_wait_quantile(4, 20.0, 18.0)
    assert light < heavy < NEVER
    assert queue_wait_quantile(4, 20.0, 20.0) == NEVER
    # M/M/1, p95: ln(rho / 0.05) / (mu - lambda)
    assert queue_wait_quantile(1, 10.0, 8.0) == pytest.approx(math.log(0.8 / 0.05) / 2.0)


def test_a_queue_wait_target_adds_replicas_until_the_model_meets_it():
    candidate = Candidate(512 * MIB, "prefork", 1, 10.0)
    loose = fleet_row(candidate, 16.0, 0.2, None)
    assert loose.replicas == 2 and loose.safe
    tight = fleet_row(candidate, 16.0, 0.2, 0.05)
    wait = tight.expected_queue_wait_p95_s
    assert tight.replicas > loose.replicas and wait is not None and wait <= 0.05
    assert tight.total_bytes == tight.replicas * 512 * MIB
    assert tight.headroom == pytest.approx(1 - 16.0 / (tight.replicas * 10.0))


def test_the_cheapest_safe_row_wins_and_killed_or_unmeasured_candidates_are_not_safe():
    rows = fleet_table(
        [
            Candidate(1024 * MIB, "prefork", 8, 40.0),  # 3 replicas: 3 GiB
            Candidate(512 * MIB, "threads", 16, 40.0),  # 3 replicas: 1.5 GiB
            Candidate(256 * MIB, "prefork", 4, 40.0, kills=2),  # killed: out
            Candidate(256 * MIB, "solo", 0, None, note="does not fit"),
        ],
        rate=100.0,
        headroom=0.2,
        queue_wait_p95=None,
    )
    choice = cheapest(rows)
    assert choice is not None and choice.candidate.pool == "threads" and choice.total_bytes == 3 * 512 * MIB
    assert [r.safe for r in rows] == [True, True, False, False]
    assert "OOM kill" in rows[2].why or "OOM kill" in rows[3].why


def test_prefork_follows_the_plan_and_in_process_pools_pay_only_each_tasks_growth():
    worker = profile()
    prefork, _ = safe_concurrency(worker, "prefork", 300 * MIB, 0.0)
    assert prefork == plan_capacity(worker, 300 * MIB, 0.0).concurrency == 4
    threads, _ = safe_concurrency(worker, "threads", 300 * MIB, 0.0)
    assert threads == (300 - 40 - 10) // 48 == 5  # one process: no private child pages per slot
    assert safe_concurrency(worker, "solo", 300 * MIB, 0.0)[0] == 1
    assert safe_concurrency(worker, "threads", 60 * MIB, 0.0)[0] == 0


def test_pools_compared_are_those_asked_then_those_the_scenario_allows():
    assert pools_allowed(None, None) == ["prefork", "solo"]
    assert pools_allowed(("prefork", "threads"), None) == ["prefork", "threads"]
    assert pools_allowed(("prefork", "threads"), ["solo"]) == ["solo"]


def test_a_saturating_run_sends_above_what_the_slots_can_finish_but_not_beyond_the_target():
    assert saturating_rate(4, 0.2, 1000) == 30.0  # 4 / 0.2 = 20/s, sent at 1.5x
    assert saturating_rate(4, 0.2, 12) == 12


def _tasks(io: int, heavy: int) -> list[TaskLine]:
    def task(name: str, peak_mib: int, seconds: float) -> TaskLine:
        run = Execution(1, 1.0, 1.0, 50 * MIB, finished_mono=1.0 + seconds)
        record = TaskRecord(name, name, "", [], 0.5, peak_rss_bytes=(50 + peak_mib) * MIB, executions=[run])
        record.peak_is_exact, record.peak_above_start_bytes = True, peak_mib * MIB
        return line_of(record)

    return [task("mix.io", 4, 0.2) for _ in range(io)] + [task("mix.heavy", 48, 0.2) for _ in range(heavy)]


def test_kind_costs_read_peaks_and_run_times_per_task_name_from_records_and_streams():
    kinds = {k.name: k for k in kind_costs([*_tasks(2, 1), TaskLine("s", "mix.io", run_time_s=0.4)])}
    assert kinds["mix.heavy"].peak_above_start_bytes == 48 * MIB and kinds["mix.heavy"].tasks == 1
    assert kinds["mix.io"].tasks == 3 and kinds["mix.io"].run_time_s == pytest.approx(0.2, rel=0.01)


def test_a_rare_heavy_kind_dominates_and_a_common_one_does_not():
    assert dominant_kind(kind_costs(_tasks(19, 1))).name == "mix.heavy"
    assert dominant_kind(kind_costs(_tasks(1, 1))) is None  # half the tasks: the mix itself
    assert dominant_kind(kind_costs(_tasks(20, 0))) is None


def test_split_queues_size_two_classes_and_cost_less_than_one_for_everything():
    # 5 % of tasks need 12x the memory; a 440 MiB limit leaves 400 MiB after the worker's 40 MiB (no
    # margin); a child idles at 10 MiB private, so a child costs 10 + its class's largest task
    kinds = kind_costs(_tasks(19, 1))
    plan = split_plan(kinds, {440 * MIB: profile()}, Demand(rate=100.0, margin=0.0, headroom=0.2, max_concurrency=64))
    assert plan.dominant == "mix.heavy"
    (one,) = plan.one_class
    assert one.concurrency == 400 // 58 == 6 and one.replicas == math.ceil(120 / (6 / 0.2)) == 4
    small, big = plan.two_classes
    assert (small.queue, small.kinds, big.queue, big.kinds) == ("small", ["mix.io"], "big", ["mix.heavy"])
    assert small.concurrency == 400 // 14 == 28 and small.replicas == math.ceil(120 * 0.95 / (28 / 0.2)) == 1
    assert big.concurrency == 6 and big.replicas == math.ceil(120 * 0.05 / 30) == 1
    assert small.per_replica_per_s == pytest.approx(95.0) and big.per_replica_per_s == pytest.approx(5.0)
    assert plan.saving_bytes == (4 - 2) * 440 * MIB
    assert plan.routes == {"mix.io": "small", "mix.heavy": "big"}
    assert "dominates" in plan.sentence
    # each class recycles by the same rule as `recommend --memory`, on its own share of the limit
    # (its child's RSS at rest plus its share of the usable memory beyond the idle private pages)
    assert small.max_memory_per_child_kib == (50 * MIB + 400 * MIB // 28 - 10 * MIB) // 1024
    assert big.max_memory_per_child_kib == (50 * MIB + 400 * MIB // 6 - 10 * MIB) // 1024
    no_split = split_plan(kind_costs(_tasks(1, 1)), {440 * MIB: profile()}, Demand(100.0, 0.0, 0.2, 64))
    assert no_split.dominant is None and not no_split.two_classes


def test_each_class_takes_its_cheapest_limit_and_the_concurrency_cap():
    kinds = kind_costs(_tasks(19, 1))
    profiles = {440 * MIB: profile(), 1024 * MIB: profile()}
    plan = split_plan(kinds, profiles, Demand(rate=100.0, margin=0.0, headroom=0.2, max_concurrency=4))
    small, big = plan.two_classes
    # capped at 4 slots: 20 tasks/s a replica, at either limit, so the smaller limit is cheaper
    assert small.concurrency == 4 and small.replicas == math.ceil(114 / 20) and small.limit_bytes == 440 * MIB
    assert big.concurrency == 4 and big.replicas == 1 and big.limit_bytes == 440 * MIB
    # the heavy kind fits under no limit: that class has no replica and the plan says so
    huge = kind_costs(_tasks(19, 0)) + [k for k in kind_costs(_tasks(0, 1))]
    huge[-1].peaks, huge[-1].peak_above_start_bytes = [2000 * MIB], 2000 * MIB
    assert split_plan(huge, profiles, Demand(100.0, 0.0, 0.2, 4)).two_classes[1].replicas == 0


def test_the_limit_a_concurrency_needs_is_the_smallest_whose_plan_allows_it():
    worker = profile()  # 40 MiB fixed, 58 MiB per child
    for concurrency in (1, 3, 5):
        answer = limit_for(worker, concurrency, 0.10)
        assert answer.limit_bytes % MIB == 0
        assert plan_capacity(worker, answer.limit_bytes, 0.10).concurrency >= concurrency
        assert plan_capacity(worker, answer.limit_bytes - MIB, 0.10).concurrency < concurrency
        # just below: N children at their worst no longer fit, even with no margin
        assert answer.below_bytes < 40 * MIB + concurrency * 58 * MIB


def test_the_plan_prints_every_row_and_saves_as_strict_json():
    rows = fleet_table(
        [
            Candidate(256 * MIB, "threads", 4, 18.0, measured_s=4.0),
            Candidate(256 * MIB, "solo", 0, None, note="no fit"),
        ],
        rate=20.0,
        headroom=0.2,
        queue_wait_p95=0.5,
    )
    kinds = kind_costs(_tasks(19, 1))
    plan = TargetPlan(Target(20.0, 0.5, 0.2, 0.1, 4.0, 8.0, 4), rows=rows, choice=cheapest(rows), kinds=kinds)
    plan.split = split_plan(kinds, {256 * MIB: profile()}, Demand(20.0, 0.1, 0.2, 4))
    json.dumps(asdict(plan), allow_nan=False)  # an unbounded wait is None, never Infinity
    text = "\n".join(target_lines(plan) + split_lines(plan.split))
    assert "cheapest safe: 2 x 256.0 MiB threads --concurrency 4" in text
    assert "not safe: no fit" in text and "mix.heavy dominates the peak" in text


def test_a_class_recycles_no_lower_than_its_largest_task_and_one_class_is_sized_as_the_fleet_table():
    # the heavy kind's peaks as folded (its 48 MiB read as 40) leave each child a 50 MiB share: 90 MiB RSS,
    # below the 98 MiB one heavy task reaches (50 at rest + 48), so every task would recycle its child
    kinds = kind_costs(_tasks(19, 1))
    kinds[0].peaks = [30 * MIB] * 19 + [40 * MIB]
    measured = profile(child_max_uss_bytes=68 * MIB)  # the sampled high-water mark of the whole mix
    plan = split_plan(kinds, {440 * MIB: measured}, Demand(100.0, 0.0, 0.2, 64))
    big = plan.two_classes[1]
    assert big.kinds == ["mix.heavy"] and big.concurrency == 400 // 50
    assert big.max_memory_per_child_kib == (50 + 48) * 1024
    # the one class runs every kind: the measured worker, high-water mark included, as the fleet row
    (one,) = plan.one_class
    assert one.per_child_bytes == plan_capacity(measured, 440 * MIB, 0.0).per_child_bytes == 68 * MIB


def test_the_inverse_modes_trials_end_with_a_verdict_and_print_each_trials_limit():
    def trial(killed: bool, peak_mib: int) -> Trial:
        return Trial(2, "r", killed, int(killed), "complete", peak_mib * MIB, 0, 8)

    answer = limit_for(profile(), 2, 0.1)
    assert (answer.limit_bytes, answer.below_bytes) == (174 * MIB, 127 * MIB)
    both_held = replace(answer, held=trial(False, 120), below=trial(False, 118))
    lines = inverse_lines(replace(both_held, verdict=trials_verdict(both_held)))
    assert "just below, 127.0 MiB (r): no OOM, 0 kill(s), group peak 118.0 MiB" in lines[2]
    assert lines[-1].startswith("conservative: the trial just below, at 127.0 MiB, held too")
    assert "group peak 118.0 MiB" in lines[-1] and "at least 47.0 MiB more" in lines[-1]
    proven = replace(answer, held=trial(False, 150), below=trial(True, 127))
    assert trials_verdict(proven).startswith("proven: 174.0 MiB held (group peak 150.0 MiB) and 127.0 MiB")
    assert trials_verdict(replace(answer, held=trial(True, 174), below=trial(True, 127))).startswith("NOT proven")
    assert trials_verdict(answer) == ""
