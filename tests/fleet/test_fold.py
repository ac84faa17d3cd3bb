"""The pure parts of a fleet run: the events URL, the fold of events into tasks and replicas, and the
record read back with its schema check. The real fleet runs are in test_netns.py."""

from __future__ import annotations

import pytest
from oomlab.config.events_url import parse_events_url
from oomlab.errors import BadInput
from oomlab.record import fleet
from oomlab.record.fleet import FleetRecord
from oomlab.record.typed_json import to_json
from oomlab.workflows.fleet.events import Fold, TaskState

from tests.fleet.hello import hello


def test_events_url_keeps_the_password_for_the_client_only():
    url = parse_events_url("redis://:s3cret@10.1.2.3:6390/4/run-1", from_argv=False)
    assert (url.host, url.port, url.db, url.stream) == ("10.1.2.3", 6390, 4, "run-1")
    assert url.client_url == "redis://:s3cret@10.1.2.3:6390/4"
    assert "s3cret" not in url.shown


@pytest.mark.parametrize(
    "text", ["http://:s3cret@host/0/s", "redis://:s3cret@host/0", "redis://:s3cret@host/x/s", "redis://:s3cret@/0/s"]
)
def test_a_bad_events_url_is_one_sentence_without_its_password(text):
    with pytest.raises(BadInput) as caught:
        parse_events_url(text)
    assert "s3cret" not in caught.value.message


def test_fold_puts_each_task_and_kill_on_its_replica_on_the_redis_clock():
    fold = Fold()
    fold.take(hello("a", clock_offset_s=0.5))
    fold.take(hello("b", clock_offset_s=-0.25))
    for task_id in ("t1", "t2"):
        fold.sent(TaskState(task_id, "alloc.allocate", "", sent_wall=1001.0))
    fold.take({"ev": fleet.TASK_START, "replica": "a", "wall": 1000.7, "id": "t1", "pid": 11})
    fold.take(
        {
            "ev": fleet.TASK_END,
            "replica": "a",
            "wall": 1001.0,
            "id": "t1",
            "pid": 11,
            "state": "SUCCESS",
            "tree_peak": 64 << 20,
            "tree_peak_exact": True,
        }
    )
    fold.take({"ev": fleet.TASK_START, "replica": "b", "wall": 1001.5, "id": "t2", "pid": 21})
    fold.take(
        {
            "ev": fleet.KILL,
            "replica": "b",
            "wall": 1002.0,
            "id": "t2",
            "task": "alloc.allocate",
            "pid": 21,
            "role": "pool child",
            "cause": "oom",
            "detection_s": 0.002,
            "peak_bytes": 190 << 20,
        }
    )
    t1, t2 = fold.tasks["t1"], fold.tasks["t2"]
    assert (t1.outcome, t1.replica, t1.peak_bytes, t1.peak_exact) == ("succeeded", "a", 64 << 20, True)
    assert t1.started_wall == pytest.approx(1001.2) and t1.runtime_s == pytest.approx(0.3)
    assert (t2.outcome, t2.replica, t2.pid) == ("killed", "b", 21)
    assert t2.ended_wall == pytest.approx(1002.0 - 0.25 - 0.002)
    assert [k.replica for k in fold.kills] == ["b"] and fold.replicas["b"].killed == 1
    fold.take({"ev": fleet.MEMORY, "replica": "a", "wall": 1003.0, "usage_bytes": 90 << 20, "peak_bytes": 120 << 20})
    fold.group_peaks()  # a's hello carried no peak: its lifetime peak is not the run's, its samples are
    a, b = fold.replicas["a"], fold.replicas["b"]
    assert (a.group_peak_bytes, a.group_peak_covers) == (90 << 20, "samples")
    assert (b.peak_bytes, b.peak_killed, b.group_peak_bytes) == (190 << 20, True, None)
    assert fold.open_tasks() == []


def test_an_event_that_comes_before_its_task_is_registered_is_kept_for_it():
    fold = Fold()
    fold.take(hello("a"))
    fold.take({"ev": fleet.TASK_START, "replica": "a", "wall": 1.0, "id": "t1", "pid": 1})
    fold.sent(TaskState("t1", "n", "", sent_wall=0.5))
    assert fold.tasks["t1"].replica == "a" and fold.tasks["t1"].outcome is None


def test_the_record_is_read_back_with_its_schema_checked():
    record = FleetRecord(
        run_id="r",
        scenario="alloc",
        stream="redis://h:1/0/s",
        schedule="the scenario's plan of 1 calls",
        queue="q",
        status="complete",
        started_wall=1.0,
        replicas_expected=1,
    )
    assert FleetRecord.from_json(record.to_json()) == record
    data = record.to_json()
    data["figures"]["sent"] = "many"
    with pytest.raises(BadInput):
        FleetRecord.from_json(data)
    with pytest.raises(BadInput):
        FleetRecord.from_json({**to_json(record), "schema": "oomlab.run/3"})


def test_a_task_started_by_a_task_of_the_run_is_the_runs_and_a_strangers_is_not():
    fold = Fold()
    fold.take(hello("r1"))
    fold.sent(TaskState("t1", "workflows.start", "sends a chord", 1000.0))
    fold.take({"ev": fleet.TASK_START, "replica": "r1", "wall": 1000.1, "id": "t1", "pid": 9})
    fold.take({"ev": fleet.TASK_END, "replica": "r1", "wall": 1000.2, "id": "t1", "pid": 9, "state": "SUCCESS"})
    part = {"ev": fleet.TASK_START, "replica": "r1", "wall": 1000.3, "id": "p1", "name": "workflows.part", "pid": 9}
    fold.take({**part, "parent_id": "t1", "root_id": "t1", "group_id": "g1"})
    fold.take({**part, "id": "x1", "parent_id": "other", "root_id": "other"})  # another run's
    assert fold.open_tasks() == ["p1"] and "x1" not in fold.tasks
    task = fold.tasks["p1"]
    assert (task.sent_by, task.parent_id, task.root_id, task.group_id) == ("worker", "t1", "t1", "g1")
    fold.take({"ev": fleet.KILL, "replica": "r1", "wall": 1000.5, "id": "p1", "pid": 9, "role": "pool child",
               "cause": "oom", "peak_bytes": 150 << 20, "detection_s": 0.01})  # fmt: skip
    assert task.outcome == "killed" and task.peak_bytes == 150 << 20 and not fold.open_tasks()


def test_a_group_peak_is_the_runs_only():
    fold = Fold(window_start=1000.0)
    for name in ("up", "flat", "low"):  # each hello carries the group's lifetime peak at the run's start
        fold.take({**hello(name), "group_peak_bytes": 200 << 20})
    memory = {"ev": fleet.MEMORY, "wall": 1001.0}
    fold.take({**memory, "replica": "up", "usage_bytes": 60 << 20, "peak_bytes": 210 << 20})  # rose: the run's
    fold.take({**memory, "replica": "flat", "usage_bytes": 60 << 20, "peak_bytes": 200 << 20})  # an earlier run's
    fold.take({**memory, "replica": "flat", "wall": 999.0, "usage_bytes": 150 << 20, "peak_bytes": 200 << 20})
    fold.take({**memory, "replica": "low", "usage_bytes": 30 << 20, "peak_bytes": 200 << 20})
    fold.sent(TaskState("t", "alloc.allocate", "fits", 1000.0))
    fold.take({"ev": fleet.TASK_START, "replica": "low", "wall": 1000.1, "id": "t", "pid": 3})
    fold.take({"ev": fleet.TASK_END, "replica": "low", "wall": 1000.2, "id": "t", "pid": 3, "state": "SUCCESS",
               "tree_peak": 40 << 20, "tree_peak_exact": True})  # fmt: skip
    fold.group_peaks()
    got = {name: (r.group_peak_bytes, r.group_peak_covers) for name, r in fold.replicas.items()}
    assert got == {
        "up": (210 << 20, "run"),
        "flat": (60 << 20, "samples"),  # the sample before the run's start is not the run's
        "low": (40 << 20, "largest task"),
    }
