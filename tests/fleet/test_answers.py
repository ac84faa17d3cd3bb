"""What a new user's fleet trial found, each on a real fleet (tests/fleet/netns.py: three agent-wrapped
workers under real memory limits, in network namespaces of their own)."""

from __future__ import annotations

import uuid

import pytest
from oomlab.record.fleet import load_fleet

from tests.fleet.netns import hosts, run_controller, start_agent, stop_all

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
