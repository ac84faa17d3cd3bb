import pytest
from oomlab.config.lab_cells import AXES, expand, parse_only
from oomlab.errors import BadInput
from oomlab.record.delivery import Location, PoisonLoop
from oomlab.record.schema import CeleryEvent, Execution, KillRecord, TaskRecord
from oomlab.workflows.lab.verdict import flower_worker_online, judge


def run(pid, start, end=None, killed=False, redelivered=False, retries=0, count=None):
    return Execution(
        pid=pid,
        started_mono=start,
        started_wall=start,
        start_rss_bytes=1,
        finished_mono=end,
        killed=killed,
        redelivered=redelivered,
        retries=retries,
        delivery_count=count,
    )


def kill(pid, at, task="t", role="child"):
    return KillRecord(
        pid=pid,
        role=role,
        task_id=task,
        task_name="grow",
        signal="SIGKILL",
        cause="oom",
        kernel_time_mono=at,
        kernel_time_source="kmsg",
    )


def task(state, runs):
    return TaskRecord(
        id="t",
        name="grow",
        label="",
        args=[],
        sent_mono=0.0,
        state=state,
        executions=runs,
        state_history=[(0.0, "PENDING"), (1.0, state)],
    )


def test_one_kill_then_failure_is_failed():
    verdict = judge(task("FAILURE", [run(1, 1.0, killed=True)]), [kill(1, 1.5)], Location("t", "absent"))
    assert (verdict.outcome, verdict.executions, verdict.kills, verdict.redeliveries) == ("failed", 1, 1, [])


def test_redelivered_then_success_is_recovered_with_its_delay_and_how():
    runs = [run(1, 1.0, killed=True), run(2, 2.25, end=2.5, redelivered=True)]
    verdict = judge(task("SUCCESS", runs), [kill(1, 1.5)], Location("t", "absent"))
    assert verdict.outcome == "recovered"
    assert [(r.seconds, r.how) for r in verdict.redeliveries] == [(0.75, "redelivered")]
    assert verdict.first_redelivery_s == 0.75


def test_a_retry_is_told_from_a_redelivery_by_the_retry_count():
    runs = [run(1, 1.0, killed=True), run(2, 3.0, killed=True, retries=1)]
    verdict = judge(task("FAILURE", runs), [kill(1, 1.5), kill(2, 3.5)], Location("t", "absent"))
    assert verdict.outcome == "failed_after_retries"
    assert [r.how for r in verdict.redeliveries] == ["retry"]


def test_three_kills_with_the_message_back_in_the_queue_is_a_poison_loop_with_its_rate():
    runs = [run(i, float(i), killed=True, redelivered=i > 1) for i in (1, 2, 3)]
    kills = [kill(i, i + 0.5) for i in (1, 2, 3)]
    verdict = judge(task("STARTED", runs), kills, Location("t", "queued"))
    assert verdict.outcome == "looping"
    assert verdict.poison_loop == PoisonLoop(kills=3, per_minute=60.0)  # 2 intervals over 2 s


def test_a_loop_the_broker_ended_is_dropped_and_stuck():
    runs = [run(i, float(i), killed=True, count=i - 1) for i in (1, 2, 3)]
    verdict = judge(task("STARTED", runs), [kill(i, i + 0.5) for i in (1, 2, 3)], Location("t", "absent"))
    assert verdict.outcome == "dropped"
    assert verdict.stuck_in_started and verdict.delivery_counts == [0, 1, 2]


def test_whole_worker_kill_with_the_message_gone_is_lost():
    verdict = judge(task("STARTED", [run(1, 1.0, killed=True)]), [kill(1, 1.5)], Location("t", "absent"))
    assert verdict.outcome == "lost" and verdict.stuck_in_started


def test_a_message_still_unacked_is_awaiting_redelivery_not_stuck():
    verdict = judge(task("STARTED", [run(1, 1.0, killed=True)]), [kill(1, 1.5)], Location("t", "unacked"))
    assert verdict.outcome == "awaiting_redelivery" and not verdict.stuck_in_started


def test_no_kill_says_so():
    verdict = judge(task("SUCCESS", [run(1, 1.0, end=2.0)]), [], Location("t", "absent"))
    assert verdict.outcome == "not_killed"


def event(kind, at):
    return CeleryEvent(kind, at, None, None, "w")


def test_flower_online_gauge_stays_up_without_worker_offline():
    events = [event("worker-online", 1.0), event("worker-heartbeat", 3.0)]
    assert flower_worker_online(events, until=10.0) == 1
    assert flower_worker_online([*events, event("worker-offline", 11.0)], until=10.0) == 1  # after the window
    assert flower_worker_online([*events, event("worker-offline", 9.0)], until=10.0) == 0
    assert flower_worker_online([], until=10.0) is None


def test_matrix_covers_every_axis_and_narrows():
    assert len(expand({})) == 2 * 2 * 2 * 3 * 2 * 2
    cells = expand(parse_only("broker=quorum,redis acks=late"))
    assert {c.broker for c in cells} == {"redis", "quorum"} and {c.acks for c in cells} == {"late"}
    assert len(cells) == 2 * 2 * 2 * 2 * 2
    assert [c.broker for c in cells][:2] == ["redis", "redis"]  # the matrix's order, not the option's
    assert set(AXES) == {"acks", "reject", "retry", "broker", "scope", "oom"}


@pytest.mark.parametrize("text", ["acks=sometimes", "colour=red", "acks", "broker="])
def test_bad_selections_are_one_sentence(text):
    with pytest.raises(BadInput):
        parse_only(text)
