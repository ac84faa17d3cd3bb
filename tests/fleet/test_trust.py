"""Anyone who can write to the fleet's stream can put anything there (docs/security.md): what the
controller does with it. Each forged or malformed entry is dropped and counted in one note, never a
traceback, never a verdict changed; the stream gone or replaced mid-run is said and ends the run."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from oomlab.record import fleet
from oomlab.workflows.fleet import events as fold_module
from oomlab.workflows.fleet.events import Fold, TaskState
from oomlab.workflows.fleet.schema import MAX_EVENT_BYTES
from oomlab.workflows.fleet.stream import read_stream

from tests.fleet.hello import hello


def _raw(event) -> bytes:
    return json.dumps(event).encode()


def _fold_with_task(task_id="t1"):
    fold = Fold()
    fold.take_entry(_raw(hello("a")))
    fold.take_entry(_raw(hello("b", agent_pid=200, hostname="celery@b")))
    fold.sent(TaskState(task_id, "alloc.allocate", "", sent_wall=1000.5))
    return fold


BAD = [
    b'{"ev":"task_start","replica":"a","wall":"x","id":"t1"}',
    b'{"ev":"task_start","replica":"a","wall":1001,"id":"t1","pid":"abc"}',
    b'{"ev":"kill","replica":"a","wall":1001,"id":"t1","limit_bytes":[1]}',
    b'{"ev":"kill","replica":"a","wall":1001,"id":"t1","group_bytes":"x"}',
    b'{"ev":"memory","replica":"a","wall":1001,"peak_bytes":"x"}',
    b'{"ev":"task_end","replica":"a","wall":NaN,"id":"t1"}',
    b'{"ev":"task_end","replica":"a","wall":Infinity,"id":"t1"}',
    b'{"ev":"task_end","replica":"a","wall":1001,"id":"t1","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"ev":"kill","replica":"a","wall":1001,"id":"t1","task":"\\ud800","role":"pool child"}',
    b'{"ev":"worker_start","replica":"\\udfff"}',
    b'{"ev":"task_end","replica":"a","wall":1001,"id":"t1","name":"' + b"n" * (MAX_EVENT_BYTES + 1) + b'"}',
    b'{"ev":"kill","replica":"a","wall":1001,"id":"t1","role":"' + b"r" * 1000 + b'"}',
    b"[1,2]",
    b"not json",
    b"\xff\xfe",
]


def test_malformed_entries_are_dropped_and_counted_in_one_note_never_a_traceback():
    fold = _fold_with_task()
    for raw in BAD:
        fold.take_entry(raw)  # today: TypeError, ValueError, RecursionError on the first few
    task = fold.tasks["t1"]
    assert task.outcome is None and task.replica is None and fold.kills == []
    assert sum(fold.malformed.values()) == len(BAD)
    (note,) = [n for n in fold.notes() if "malformed" in n]
    assert note.startswith(f"{len(BAD)} stream entries were malformed and dropped")
    note.encode("utf-8")  # printable: no lone surrogate got into the record


def test_events_for_task_ids_never_sent_are_capped_in_count_and_bytes_and_noted(monkeypatch):
    monkeypatch.setattr(fold_module, "EARLY_EVENTS", 50)
    fold = _fold_with_task()
    for i in range(200):  # one task id each, far fewer than the key cap: today all are kept
        fold.take_entry(_raw({"ev": fleet.TASK_START, "replica": "a", "wall": 1001.0, "id": f"x{i}", "pid": 1}))
    assert fold.early_events == 50 and sum(len(v) for v in fold.early.values()) == 50
    assert fold.early_dropped == 150
    assert any("150 events for task ids this run never sent were dropped" in n for n in fold.notes())
    fold = _fold_with_task()
    big = {"ev": fleet.TASK_START, "replica": "a", "wall": 1001.0, "id": "y", "pid": 1, "pad": "p" * 60_000}
    monkeypatch.setattr(fold_module, "EARLY_BYTES", 1 << 20)
    for _ in range(40):
        fold.take_entry(_raw(big))
    assert fold.early_bytes <= 1 << 20 and fold.early_dropped > 20


def test_a_forged_end_after_a_kill_does_not_turn_the_kill_into_a_success():
    fold = _fold_with_task()
    fold.take_entry(_raw({"ev": fleet.TASK_START, "replica": "a", "wall": 1001.0, "id": "t1", "pid": 11}))
    kill = {"ev": fleet.KILL, "replica": "a", "wall": 1002.0, "id": "t1", "pid": 11, "role": "pool child"}
    fold.take_entry(_raw({**kill, "cause": "oom"}))
    fold.take_entry(_raw({"ev": fleet.TASK_END, "replica": "a", "wall": 1003.0, "id": "t1", "state": "SUCCESS"}))
    task = fold.tasks["t1"]
    assert task.outcome == "killed" and fold.replicas["a"].succeeded == 0 and fold.overruled == 1


def test_an_end_from_another_replica_than_the_one_that_started_the_task_is_ignored():
    fold = _fold_with_task()
    fold.take_entry(_raw({"ev": fleet.TASK_START, "replica": "a", "wall": 1001.0, "id": "t1", "pid": 11}))
    fold.take_entry(_raw({"ev": fleet.TASK_END, "replica": "b", "wall": 1002.0, "id": "t1", "state": "FAILURE"}))
    assert fold.tasks["t1"].outcome is None and fold.replicas["b"].failed == 0 and fold.overruled == 1
    fold.take_entry(_raw({"ev": fleet.TASK_END, "replica": "a", "wall": 1002.0, "id": "t1", "state": "SUCCESS"}))
    assert fold.tasks["t1"].outcome == "succeeded"
    assert any(n.startswith("1 task events were ignored") for n in fold.notes())


def test_a_second_hello_under_a_taken_name_is_a_conflict_not_a_merge():
    fold = Fold()
    fold.take_entry(_raw(hello("host1", agent_pid=100, hostname="celery@w1")))
    fold.take_entry(_raw(hello("host1", agent_pid=101, hostname="celery@w2", limit_bytes=1 << 40)))
    replica = fold.replicas["host1"]
    assert replica.limit_bytes == 200 << 20 and replica.hostname == "celery@w1"
    (conflict,) = fold.notes()
    assert "host1" in conflict and "taken" in conflict and "--replica" in conflict and "\n" not in conflict
    fold.take_entry(_raw(hello("host1", agent_pid=100, hostname="celery@w1")))  # the same agent again: fine
    assert len(fold.conflicts) == 1
    hijack = hello("host1", agent_pid=100, hostname="celery@w1", limit_bytes=8 << 30, clock_offset_s=-3600.0)
    fold.take_entry(_raw(hijack))  # the first agent's identity, another limit and clock: refused too
    assert replica.limit_bytes == 200 << 20 and fold.offsets["host1"] == 0.0 and len(fold.conflicts) == 2


@pytest.mark.parametrize(
    "bad", [{"limit_bytes": 0}, {"limit_bytes": -5}, {"limit_bytes": 1 << 60}, {"clock_offset_s": 1e9}]
)
def test_a_hello_with_an_implausible_limit_or_clock_is_refused(bad):
    fold = Fold()
    fold.take_entry(_raw(hello("r", **bad)))
    assert "r" not in fold.replicas and len(fold.conflicts) == 1


def test_events_from_a_replica_that_never_said_hello_are_counted_on_none():
    fold = _fold_with_task()
    fold.take_entry(_raw({"ev": fleet.TASK_START, "replica": "ghost", "wall": 1001.0, "id": "t1", "pid": 9}))
    fold.take_entry(_raw({"ev": fleet.KILL, "replica": "ghost", "wall": 1002.0, "id": "t1", "pid": 9}))
    fold.take_entry(_raw({"ev": fleet.KILL, "replica": "ghost", "wall": 1002.0, "pid": 9, "role": "main"}))
    assert "ghost" not in fold.replicas and fold.kills == [] and fold.tasks["t1"].outcome is None
    assert fold.no_hello == 3 and any("never said hello" in n for n in fold.notes())


@pytest.fixture
def redis_client():
    redis = pytest.importorskip("redis")
    client = redis.Redis(host="127.0.0.1", port=6379, db=14, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError:
        pytest.fail("tests/fleet need a Redis at 127.0.0.1:6379")
    stream = f"oomlab-trust-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield client, stream
    client.delete(stream)


def test_a_real_stream_of_forged_entries_folds_without_a_traceback(redis_client):
    client, stream = redis_client
    fold = _fold_with_task()
    for raw in BAD:
        client.xadd(stream, {fleet.EVENT_FIELD: raw})
    client.xadd(stream, {"other": b"x"})
    entries, lost = read_stream(client, stream, "0-0", 100)
    assert lost is None
    for _stream, items in entries:
        for _entry_id, fields in items:
            fold.take_entry(fields.get(fleet.EVENT_FIELD.encode()))
    assert sum(fold.malformed.values()) == len(BAD) + 1 and fold.tasks["t1"].outcome is None


def test_the_stream_replaced_by_a_string_or_deleted_mid_run_is_said(redis_client):
    client, stream = redis_client
    client.xadd(stream, {fleet.EVENT_FIELD: b"{}"})
    entries, lost = read_stream(client, stream, "0-0", 100)
    assert entries and lost is None
    client.delete(stream)
    client.set(stream, "hijacked")  # today: redis.ResponseError WRONGTYPE out of the controller
    entries, lost = read_stream(client, stream, "0-0", 100)
    assert entries == [] and "not a stream" in lost and "ends with what it has" in lost
    client.delete(stream)
    entries, lost = read_stream(client, stream, "0-0", 100)
    assert entries == [] and "deleted mid-run" in lost


def test_every_event_derived_string_in_the_summary_stays_on_its_line(capsys):
    from oomlab.cli.fleet import print_summary
    from oomlab.record.fleet import FleetKill, FleetRecord, ReplicaRecord

    evil = "r1\nkill on r2: forged\r\x1b[2J\u202e"
    record = FleetRecord(
        run_id="r",
        scenario="alloc",
        stream="redis://h:1/0/s",
        schedule="plan",
        queue="q",
        status="complete",
        started_wall=0.0,
        replicas_expected=2,
        replicas=[ReplicaRecord(name=evil, limit_bytes=1 << 30, concurrency=1)],
        kills=[FleetKill(evil, 1, evil, evil, 0.0, None, task_id=evil, task_name=evil)],
        missing=1,
        missing_names=[evil],
        notes=[f"a note naming {evil}"],
    )
    print_summary(record)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out
    assert not [line for line in out.splitlines() if line.startswith("kill on r2")]
    assert len(out.splitlines()) == 10  # 5 head lines, replica, kill, missing, note, record


def test_the_controller_says_a_refused_hello_and_ends_on_a_hijacked_stream(redis_client, tmp_path):
    from types import SimpleNamespace

    from oomlab.config.events_url import parse_events_url
    from oomlab.workflows.fleet.run import FleetOptions, FleetRun

    client, stream = redis_client
    options = FleetOptions(
        events=parse_events_url(f"redis://127.0.0.1:6379/14/{stream}"),
        replicas=1,
        broker="redis://127.0.0.1:6379/14",
        result_backend=None,
        queue="q",
        results=str(tmp_path),
    )
    said: list[str] = []
    run = FleetRun(SimpleNamespace(name="alloc"), options, said.append)
    run.client = client
    client.xadd(stream, {fleet.EVENT_FIELD: _raw(hello("w", agent_pid=1, hostname="celery@one"))})
    client.xadd(stream, {fleet.EVENT_FIELD: _raw(hello("w", agent_pid=2, hostname="celery@two"))})
    client.xadd(stream, {fleet.EVENT_FIELD: b'{"ev":"memory","replica":"w","wall":1,"peak_bytes":"x"}'})
    run._read(100)
    assert run.fold.replicas["w"].hostname == "celery@one" and len(said) == 1 and "taken" in said[0]
    client.delete(stream)
    client.set(stream, "hijacked")  # today: redis.ResponseError (WRONGTYPE) out of the run
    run._read(100)
    assert run.stream_lost and run.stopping and "not a stream" in said[-1] and run.notes == [said[-1]]


def test_pool_children_that_start_before_their_replicas_hello_are_its_own():
    """The pool starts before the worker is ready, and the hello comes at ready: not foreign."""
    fold = _fold_with_task()
    for pid in (11, 12):
        fold.take_entry(_raw({"ev": fleet.CHILD_START, "replica": "late", "wall": 999.0, "pid": pid}))
    fold.take_entry(_raw({"ev": fleet.CHILD_START, "replica": "ghost", "wall": 999.0, "pid": 13}))
    fold.take_entry(_raw(hello("late")))
    assert fold.replicas["late"].child_starts == 2
    assert [n for n in fold.notes() if "never said hello" in n] == [
        "1 events from replicas that never said hello were counted on none (foreign)"
    ]
