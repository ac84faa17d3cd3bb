"""`oomlab agent --events`: the sender on its own, against the machine's Redis (no worker): the hello
makes the stream with the host's clock offset, later events never make one (NOMKSTREAM), a deleted
stream is joined again when the next run makes it, and an unreachable Redis costs dropped events,
counted, never a wait in the caller."""

from __future__ import annotations

import json
import time
import uuid

import redis
from oomlab.agent.events import EventSink
from oomlab.agent.kills import Kill
from oomlab.config.events_url import parse_events_url
from oomlab.record import fleet

from tests.agent.conftest import REDIS


def _wait(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_the_hello_makes_the_stream_and_events_follow_it(tmp_path):
    stream = f"oomlab-events-test-{uuid.uuid4().hex[:8]}"
    url = parse_events_url(f"{REDIS}/{stream}")
    client = redis.Redis.from_url(url.client_url)
    said: list[str] = []
    sink = EventSink(url, "replica-a", said.append).start()
    try:
        sink.publish(fleet.CHILD_START, pid=1)  # before the hello: no stream to add to, dropped
        assert _wait(lambda: sink.dropped == 1)
        assert not client.exists(stream)
        sink.worker_ready("w@host", 123, 200 << 20, 2)
        assert _wait(lambda: sink.hello_sent)
        sink.publish(fleet.TASK_START, id="t1", name="n", pid=5)
        sink.kill(Kill(pid=5, role="pool child", cause="oom", seen_mono=time.monotonic(), task_id="t1", task_name="n"))
        sink.close(timeout=5)
        entries = [json.loads(fields[b"e"]) for _id, fields in client.xrange(stream)]
        assert [e["ev"] for e in entries] == [fleet.WORKER_START, fleet.TASK_START, fleet.KILL]
        hello = entries[0]
        assert (hello["replica"], hello["pid"], hello["limit_bytes"], hello["concurrency"]) == (
            "replica-a",
            123,
            200 << 20,
            2,
        )
        assert abs(hello["clock_offset_s"]) < 1 and 0 < hello["clock_round_trip_s"] < 1
        assert entries[2]["id"] == "t1" and entries[2]["role"] == "pool child"
        client.delete(stream)  # the run ends: later events do not make it again
        sink.worker_exit(0)
        sink.close(timeout=5)
        assert not client.exists(stream) and sink.dropped == 2
        assert not _wait(lambda: client.exists(stream), timeout=4)  # its hello does not make it again
        client.xadd(stream, {"e": json.dumps({"ev": fleet.RUN_START})})  # the next run makes it
        assert _wait(lambda: client.xlen(stream) == 2, timeout=5)  # and the replica says hello again
        again = json.loads(client.xrange(stream)[-1][1][b"e"])
        assert again["ev"] == fleet.WORKER_START and again["rejoined"] and again["pid"] == 123
    finally:
        client.delete(stream)


def test_an_unreachable_redis_drops_events_without_making_the_caller_wait():
    url = parse_events_url("redis://:a-secret@127.0.0.1:1/0/nowhere", from_argv=False)  # nothing listens on port 1
    said: list[str] = []
    sink = EventSink(url, "replica-b", said.append).start()
    sink.worker_ready("w@host", 1, None, 1)
    started = time.monotonic()
    for i in range(2000):
        sink.publish(fleet.TASK_START, id=str(i), name="n", pid=1)
    assert time.monotonic() - started < 0.5  # never waits on the network
    sink.close(timeout=10)
    assert sink.dropped == 2000 and not sink.hello_sent
    assert len([s for s in said if "cannot send events to redis://127.0.0.1:1/0/nowhere" in s]) == 1
    assert "a-secret" not in "".join(said)
