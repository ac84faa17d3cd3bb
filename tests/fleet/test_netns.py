"""A fleet across hosts: network namespaces made by the test (tests/fleet/netns.py), a private Redis and
the controller in one, each worker in its own under `oomlab agent --memory 200MiB --events ...` in a
memory cgroup of its own. Real workers, real kills, a real network; nothing shared on disk between the
controller and the replicas (each writes its own log, which only the test reads)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from oomlab.record import fleet
from oomlab.record.fleet import load_fleet

from tests.fleet.netns import REDIS_PORT, hosts, redis_cli, run_controller, run_single, start_agent, stop_all

pytestmark = pytest.mark.integration


def test_a_fleet_of_three_across_namespaces_with_one_replica_oom_killed(tmp_path):
    # 12 tasks of 16-64 MiB, each holding its memory 1 s; the 7th asks for 1.25 x the 200 MiB limit and is
    # OOM-killed wherever it runs. One worker (200 MiB, -c 1, as each replica) runs them first, on this host.
    plan = ("--tasks", "12", "--param", "every=12", "--param", "hold=1")
    single = run_single(tmp_path, "--memory", "200MiB", "--concurrency", "1", *plan)
    started = time.monotonic()
    stream, queue = f"fleet-{uuid.uuid4().hex[:8]}", f"fleet.{uuid.uuid4().hex[:8]}"
    with hosts(3) as made:
        made.start_redis(tmp_path)
        agents = [start_agent(made, i, stream, queue, tmp_path) for i in (1, 2, 3)]
        done = run_controller(made, stream, queue, tmp_path, *plan, "--beside", single)
        assert redis_cli(made, "-n", "1", "EXISTS", stream) == "0", "the run's stream was not deleted"
        time.sleep(1.5)  # the replicas' next memory events find their run's stream gone
        assert redis_cli(made, "-n", "1", "EXISTS", stream) == "0", "a replica made the deleted stream again"
        # the same fleet, left running, takes a second run on the same stream (every replica rejoins): an
        # open-loop schedule of alloc's mix this time, 5 tasks a second for 2 s
        again = run_controller(made, stream, queue, tmp_path, "--rate", "5/s", "--duration", "2s", "--param", "over=0")
        codes = stop_all(made, agents)
        logs = {name: log.read_text(errors="replace") for name, _p, log in agents}
    detail = f"{done.stdout}\n{done.stderr}\n" + "\n".join(f"--- {n}\n{t[-3000:]}" for n, t in logs.items())
    print(done.stdout)  # the summary docs/fleets.md shows (pytest -s)
    assert done.returncode == 0, detail
    record = load_fleet(done.stdout.strip().splitlines()[-1])  # read back with the schema check
    f = record.figures
    assert record.status == "complete" and record.missing == 0, detail
    assert sorted(r.name for r in record.replicas) == ["r1", "r2", "r3"]
    # every task accounted for: 11 succeeded, the over-limit one killed, none lost
    assert (f.sent, f.succeeded, f.killed, f.lost, f.failed) == (12, 11, 1, 0, 0), detail
    assert all(t.replica in ("r1", "r2", "r3") and t.how_known == "events" for t in record.tasks), detail
    # the kill on the replica that really had it: its own agent saw the kernel kill it, the others saw none
    [kill] = [k for k in record.kills if k.role == "pool child"]
    assert kill.cause == "oom" and kill.limit_bytes == 200 << 20, kill
    over = next(t for t in record.tasks if t.label.startswith("over-limit"))
    assert (over.outcome, over.replica, over.id) == ("killed", kill.replica, kill.task_id), detail
    for name, text in logs.items():
        assert ("killed by the kernel's OOM killer" in text) == (name == kill.replica), f"{name}:\n{text[-3000:]}"
    assert kill.detection_s is not None and kill.detection_s < 1.0
    # exact peaks per task, the fleet's figures, and the clocks stated
    fitting = [t for t in record.tasks if t.outcome == "succeeded"]
    assert all(t.peak_exact and t.peak_bytes and t.peak_bytes > 0 and t.replica for t in fitting), detail
    assert f.throughput_per_s and f.throughput_per_s > 0 and f.latency_p50_s and f.latency_p95_s >= f.latency_p50_s
    assert f.backlog and f.backlog_max is not None and f.peak_bytes >= 48 << 20
    assert all(r.clock is not None and abs(r.clock.offset_s) < 0.5 for r in record.replicas)
    # each replica's whole worker (its memory group) measured, at or under its limit
    assert all(r.group_peak_bytes and 40 << 20 < r.group_peak_bytes <= 200 << 20 for r in record.replicas), detail
    assert f.group_peak_bytes == max(r.group_peak_bytes or 0 for r in record.replicas)
    assert record.controller_clock is not None and record.stream_deleted
    # the password given by environment is in no log, record or process argument
    text = json.dumps(record.to_json()) + done.stdout + done.stderr + "".join(logs.values())
    assert "unused-secret" not in text
    assert all(code == 0 for code in codes.values()), codes
    assert again.returncode == 0, f"{again.stdout}\n{again.stderr}"
    second = load_fleet(again.stdout.strip().splitlines()[-1])
    assert sorted(r.name for r in second.replicas) == ["r1", "r2", "r3"] and second.missing == 0
    assert (second.figures.sent, second.figures.succeeded) == (10, 10) and second.stream_deleted
    assert second.figures.asked_per_s == 5 and second.schedule.startswith("5/s for 2 s: the scenario's mix")
    assert record.schedule == "the scenario's plan of 12 calls"
    assert time.monotonic() - started < 60
    assert_beside_one_worker(record, single, done.stdout)


def assert_beside_one_worker(record, single: str, stdout: str) -> None:
    """The fleet's figures beside the single worker's run of the same 12 tasks (read back from fleet.json)."""
    b = record.beside
    assert b is not None and b.run_dir == single and b.run_id == single.rsplit("/", 1)[-1], record.beside
    assert (b.limit_bytes, b.concurrency, b.replicas) == (200 << 20, 1, 3)
    assert (b.single.sent, b.single.final, b.single.killed) == (12, 12, 1), b.single
    assert (b.fleet.sent, b.fleet.final, b.fleet.killed) == (12, 12, 1), b.fleet
    assert b.fleet.throughput_per_s == record.figures.throughput_per_s
    ratios, one, many = b.ratios, b.single, b.fleet
    assert ratios.throughput == round(many.throughput_per_s / one.throughput_per_s, 3), b
    assert ratios.throughput_per_replica == round(many.throughput_per_s / one.throughput_per_s / 3, 3), b
    # Bounds that hold whatever else the 2 shared cores do, since a task mostly sleeps (1 s holding its
    # memory) and the only long stall is Celery's replacing a killed pool child (up to 5 s: billiard's
    # maintain_pool timer), once on each side. One worker runs the 12 one by one: 12 s at least, 18 s at
    # most. In the fleet a replica runs 4 at least (4 s), and the killed one's (about its 3rd) stall holds
    # only its one prefetched task while the others run the rest: 8.5 s at most. So fleet ÷ one is within
    # 12/8.5 and 18/4, no replica beats the one worker by more than its stall, and the fleet's median task
    # (done within about two rounds, before the kill) waits far less than the worker's 6th (6 s at least).
    assert 1.3 < ratios.throughput < 4.6 and ratios.throughput_per_replica < 1.55, b
    assert ratios.latency_p50 < 0.7 and one.latency_p50_s >= 6.0, b
    # the same tasks, the same limit: task peaks alike, and each group reached the limit (a kill in each)
    assert 0.5 < ratios.peak < 2 and one.group_peak_bytes == many.group_peak_bytes == 200 << 20, b
    assert f"beside one worker: run {b.run_id}, started " in stdout and "fleet of 3" in stdout, stdout


def test_a_replica_whose_agent_cannot_reach_the_stream_is_reported(tmp_path):
    stream, queue = f"fleet-{uuid.uuid4().hex[:8]}", f"fleet.{uuid.uuid4().hex[:8]}"
    with hosts(3) as made:
        made.start_redis(tmp_path)
        # r3's agent is told a port where nothing listens: its worker takes tasks, its events go nowhere
        agents = [
            start_agent(made, i, stream, queue, tmp_path, REDIS_PORT if i < 3 else REDIS_PORT + 1) for i in (1, 2, 3)
        ]
        # r1 and r2 said hello before the run starts (the run reads the stream from its start): its hello
        # timeout is then only r3's, which never comes
        said_hello(made, stream, {"r1", "r2"})
        done = run_controller(
            made, stream, queue, tmp_path, "--tasks", "6", "--param", "over=0", "--hello-timeout", "3",
            replicas="r1,r2,r3",
        )  # fmt: skip
        stop_all(made, agents)
        logs = {name: log.read_text(errors="replace") for name, _p, log in agents}
    detail = f"{done.stdout}\n{done.stderr}\n" + "\n".join(f"--- {n}\n{t[-2000:]}" for n, t in logs.items())
    assert done.returncode == 4, detail  # a replica did not start as far as the run can tell: exit code 4
    assert "2 of 3 replicas said hello within 3 s (r1, r2); 1 missing: r3" in done.stderr, detail
    assert "1 replica(s) never said hello" in done.stdout and "(r3)" in done.stdout, detail
    record = load_fleet(done.stdout.strip().splitlines()[-1])
    assert record.status == "replicas_missing" and record.missing == 1 and record.missing_names == ["r3"]
    assert sorted(r.name for r in record.replicas) == ["r1", "r2"]
    # every task still accounted for: those r3 ran are known from the result backend
    assert record.figures.sent == 6 and record.figures.succeeded == 6 and record.figures.lost == 0, detail
    silent = [t for t in record.tasks if t.how_known == "result backend"]  # those r3 ran: no replica named
    assert all(t.replica is None and t.outcome == "succeeded" for t in silent), detail
    assert len(silent) + sum(r.tasks_run for r in record.replicas) == 6, detail
    assert "cannot send events to redis://10.77.3.1:6391/1/" in logs["r3"], logs["r3"][-2000:]
    assert "event(s) were not sent to redis://10.77.3.1:6391/1/" in logs["r3"], logs["r3"][-2000:]
    assert "unused-secret" not in logs["r3"]


def said_hello(made, stream: str, names: set[str], timeout: float = 60) -> None:
    """Until each named replica's hello (its worker ready) is on the stream."""
    deadline = time.monotonic() + timeout
    while True:
        events = [
            json.loads(line)
            for line in redis_cli(made, "-n", "1", "XRANGE", stream, "-", "+").splitlines()
            if line[:1] == "{"
        ]
        hello = {e.get("replica") for e in events if e.get("ev") == fleet.WORKER_START}
        if names <= hello:
            return
        assert time.monotonic() < deadline, f"no hello from {sorted(names - hello)} within {timeout:g} s"
        time.sleep(0.2)
