"""What a new user's fleet trial found, each on a real fleet (tests/fleet/netns.py: three agent-wrapped
workers under real memory limits, in network namespaces of their own)."""

from __future__ import annotations

import uuid

import pytest
from oomlab.record.fleet import load_fleet

from tests.fleet.netns import hosts, redis_cli, run_controller, start_agent, stop_all

pytestmark = pytest.mark.integration
WORKFLOWS = "oomlab.scenarios.workflows"


def _detail(done, agents) -> str:
    logs = "\n".join(f"--- {name}\n{log.read_text(errors='replace')[-2500:]}" for name, _p, log in agents)
    return f"{done.stdout}\n{done.stderr}\n{logs}"


def test_a_chord_sent_by_a_task_is_the_runs_and_its_kills_are_counted(tmp_path):
    # the plan's one task sends a chord of 2 parts of 250 MiB to replicas limited to 200 MiB, and returns
    # at once: the parts are tasks of the run (sent by a task), each OOM-killed, and the run waits for them
    stream = f"fleet-{uuid.uuid4().hex[:8]}"
    with hosts(3) as made:
        made.start_redis(tmp_path)
        agents = [start_agent(made, i, stream, "celery", tmp_path, app=WORKFLOWS) for i in (1, 2, 3)]
        done = run_controller(
            made, stream, "celery", tmp_path, "--variant", "chord", "--param", "parts=2", "--param", "part_mib=250",
            scenario="workflows",
        )  # fmt: skip
        detail = _detail(done, agents)
        stop_all(made, agents)
    assert done.returncode == 0, detail
    record = load_fleet(done.stdout.strip().splitlines()[-1])
    f = record.figures
    assert (f.sent, f.sent_by_tasks, f.succeeded, f.killed, f.lost) == (3, 2, 1, 2, 0), detail
    [start] = [t for t in record.tasks if t.sent_by == "run"]
    parts = [t for t in record.tasks if t.sent_by == "worker"]
    assert start.name == "workflows.start" and start.outcome == "succeeded", detail
    assert all(p.name == "workflows.part" and p.outcome == "killed" and p.root_id == start.id for p in parts), detail
    assert all(p.parent_id == start.id and p.group_id for p in parts), detail
    killed = {k.task_id for k in record.kills if k.role == "pool child"}
    assert killed == {p.id for p in parts}, detail
    assert all(p.peak_bytes and p.peak_bytes > 64 << 20 for p in parts), detail
    assert "3 sent (2 sent by tasks)" in done.stdout and "2 killed" in done.stdout, detail
    assert record.stream_deleted


def test_a_replicas_group_peak_is_this_runs_and_a_killed_tasks_peak_is_its_largest(tmp_path):
    # one replica, two runs: the first's tasks are 100 MiB and 250 MiB (killed at the 200 MiB limit), the
    # second's one task 16 MiB. The second's group peak is its own, not the first's limit-high one
    stream, queue = f"fleet-{uuid.uuid4().hex[:8]}", f"fleet.{uuid.uuid4().hex[:8]}"
    with hosts(1) as made:
        made.start_redis(tmp_path)
        agents = [start_agent(made, 1, stream, queue, tmp_path)]
        big = ("--tasks", "2", "--param", "sizes=100", "--param", "every=2", "--param", "hold=0.2")
        first = run_controller(made, stream, queue, tmp_path, *big, replicas="1")
        second = run_controller(
            made, stream, queue, tmp_path, "--tasks", "1", "--param", "sizes=16", "--param", "over=0",
            "--param", "hold=0.2", replicas="1",
        )  # fmt: skip
        detail = _detail(first, agents) + _detail(second, agents)
        stop_all(made, agents)
    assert first.returncode == 0 and second.returncode == 0, detail
    one, two = (load_fleet(done.stdout.strip().splitlines()[-1]) for done in (first, second))
    [r1], [r2] = one.replicas, two.replicas
    assert (one.figures.succeeded, one.figures.killed) == (1, 1), detail
    # the first run's largest task is the killed one, at its kill, and labelled so
    [kill] = [k for k in one.kills if k.role == "pool child"]
    assert r1.peak_killed and r1.peak_bytes == kill.peak_bytes and r1.peak_bytes > 100 << 20, detail
    assert "(killed, at its kill)" in first.stdout, detail
    # the first run's group peak: the kernel's, which rose in it (to the limit), never below its largest task
    assert r1.group_peak_covers == "run" and r1.peak_bytes <= r1.group_peak_bytes <= 200 << 20, detail
    # the second's: its own (well under the first's), at least its task's, and says what it covers
    assert r2.peak_bytes and r2.peak_bytes < 40 << 20 and not r2.peak_killed, detail
    assert r2.group_peak_bytes is not None and r2.peak_bytes <= r2.group_peak_bytes < 120 << 20, detail
    assert r2.group_peak_covers in ("run", "samples", "largest task"), detail
    assert two.figures.group_peak_bytes == r2.group_peak_bytes


def test_a_queue_no_replica_consumes_is_refused_before_anything_is_sent(tmp_path):
    stream, queue = f"fleet-{uuid.uuid4().hex[:8]}", f"fleet.{uuid.uuid4().hex[:8]}"
    with hosts(1) as made:
        made.start_redis(tmp_path)
        agents = [start_agent(made, 1, stream, queue, tmp_path)]
        # the user forgot --queue: the default oomlab.alloc, which the replica does not consume
        done = run_controller(made, stream, "oomlab.alloc", tmp_path, "--tasks", "2", "--timeout", "5", replicas="1")
        left = redis_cli(made, "-n", "0", "LLEN", "oomlab.alloc")
        detail = _detail(done, agents)
        stop_all(made, agents)
    assert done.returncode == 2, detail
    assert f"no replica consumes the queue oomlab.alloc (theirs: r1: {queue})" in done.stderr, detail
    assert left == "0", f"{left} message(s) were sent\n{detail}"
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir()), detail


def test_an_unfinished_runs_messages_left_in_its_own_queue_are_deleted(tmp_path):
    # one replica with one pool process on oomlab's own queue for alloc; 4 tasks holding 3 s each and a 2 s
    # timeout: the run ends with tasks never started, whose messages must not wait there for a later worker
    stream = f"fleet-{uuid.uuid4().hex[:8]}"
    with hosts(1) as made:
        made.start_redis(tmp_path)
        agents = [start_agent(made, 1, stream, "oomlab.alloc", tmp_path)]
        done = run_controller(
            made, stream, "oomlab.alloc", tmp_path, "--tasks", "4", "--param", "over=0", "--param", "sizes=8",
            "--param", "hold=3", "--timeout", "2", replicas="1",
        )  # fmt: skip
        left = redis_cli(made, "-n", "0", "LLEN", "oomlab.alloc")
        detail = _detail(done, agents)
        stop_all(made, agents)
    assert done.returncode == 9, detail  # tasks lost
    record = load_fleet(done.stdout.strip().splitlines()[-1])
    assert record.figures.lost >= 2, detail
    assert left == "0", f"{left} message(s) left in the queue\n{detail}"
    assert any("were still waiting in its queue oomlab.alloc: deleted" in note for note in record.notes), detail
