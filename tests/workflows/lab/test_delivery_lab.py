"""`oomlab lab delivery` on real workers, the embedded Redis and the machine's RabbitMQ (in CI both
must be there: a missing RabbitMQ fails these tests with exit code 5, it does not skip them)."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import time

import pytest
from oomlab.observe.detectors.kmsg import SEEN_BEFORE_STAMP_S
from oomlab.record.schema import load_run

from tests.conftest import assert_nothing_left, oomlab_cmd
from tests.worker.test_brokers import queue_exists

pytestmark = [pytest.mark.integration, pytest.mark.services]

AMQP = os.environ.get("OOMLAB_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")


def lab(tmp_path, only: str, *extra: str, timeout: float = 150) -> tuple[dict, list[dict]]:
    """Run the lab on the cells `only` selects; its lab.json and each cell's run.json."""
    proc = subprocess.run(
        oomlab_cmd("lab", "delivery", "--only", only, "--rabbitmq-url", AMQP, "--results", str(tmp_path), *extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr
    lab_json = proc.stdout.strip().splitlines()[-1]
    with open(lab_json) as handle:
        summary = json.load(handle)
    runs = []
    for cell in summary["cells"]:
        assert cell["status"] == "complete", cell
        with open(os.path.join(cell["run_dir"], "run.json")) as handle:
            runs.append(json.load(handle))
        delivery = load_run(cell["run_dir"]).delivery  # the typed read: every field fits DeliverySection
        assert delivery is not None and delivery.cell.key == " ".join(f"{k}={v}" for k, v in cell["cell"].items())
        assert_nothing_left(runs[-1]["run_id"])
        if cell["cell"]["broker"] != "redis":  # the embedded Redis goes with its run; RabbitMQ stays
            assert not queue_exists(AMQP, runs[-1]["worker"]["queue"]), "the cell's queue was left on RabbitMQ"
    return summary, runs


def only_verdict(run: dict) -> dict:
    [verdict] = run["delivery"]["verdicts"]
    return verdict


def test_default_acks_child_kill_fails_with_worker_lost_and_the_message_is_gone(tmp_path):
    _, [run] = lab(tmp_path, "acks=early reject=off retry=off broker=redis scope=child oom=once")
    verdict = only_verdict(run)
    [task] = run["tasks"]
    assert verdict["outcome"] == "failed"
    assert (verdict["final_state"], verdict["executions"], verdict["kills"]) == ("FAILURE", 1, 1)
    assert "WorkerLostError" in task["exception"]
    assert verdict["message"] == "absent"  # the broker no longer has it: nothing will run it again
    assert [state for _, state in verdict["state_history"]][-1] == "FAILURE"
    # Celery's own events, stamped by the worker: started, then failed once the main process noticed
    kinds = [kind for _, kind in verdict["events"]]
    assert kinds.index("task-started") < kinds.index("task-failed")


def test_acks_late_with_reject_on_a_deterministic_oom_is_a_poison_loop(tmp_path):
    _, [run] = lab(tmp_path, "acks=late reject=on retry=off broker=redis scope=child oom=always", "--window", "15")
    verdict = only_verdict(run)
    assert verdict["executions"] >= 3
    assert verdict["outcome"] == "looping"
    assert verdict["poison_loop"]["kills"] == verdict["kills"] >= 3
    assert verdict["poison_loop"]["per_minute"] > 0
    assert verdict["final_state"] != "FAILURE"  # Celery never stores a failure in a reject loop
    redeliveries = verdict["redeliveries"]
    assert redeliveries and all(r["how"] == "redelivered" and r["seconds"] > 0 for r in redeliveries)
    # every delivery after the first carries the broker's redelivered flag
    task = run["tasks"][0]
    assert [e["redelivered"] for e in task["executions"]][1:] == [True] * (len(task["executions"]) - 1)


def test_quorum_queue_delivery_limit_ends_the_loop(tmp_path):
    _, [run] = lab(
        tmp_path, "acks=late reject=on retry=off broker=quorum scope=child oom=always", "--delivery-limit", "2"
    )
    verdict = only_verdict(run)
    assert verdict["outcome"] == "dropped"
    assert verdict["executions"] == 3  # the first delivery and two redeliveries, then the queue drops it
    assert verdict["message"] == "absent"
    assert verdict["stuck_in_started"] is True
    # the broker's own count, read by the probe in each delivery
    assert verdict["delivery_counts"][-1] == 2
    assert run["delivery"]["settings"]["delivery_limit"] == 2


def test_whole_worker_kill_leaves_the_task_in_started(tmp_path):
    _, [run] = lab(tmp_path, "acks=early reject=off retry=off broker=redis scope=worker oom=once", "--window", "10")
    verdict = only_verdict(run)
    assert [state for _, state in verdict["state_history"]][-1] == "STARTED"  # task_track_started stored it
    assert verdict["final_state"] == "STARTED"
    assert verdict["stuck_in_started"] is True
    assert verdict["outcome"] == "lost"
    assert run["worker"]["restarts"], "the killed worker was started again (a restart policy)"
    assert run["delivery"]["flower_worker_online"] == 1  # no worker-offline is ever sent by a SIGKILLed worker


def test_every_kill_has_every_detectors_latency(tmp_path):
    _, runs = lab(tmp_path, "acks=early reject=off retry=off broker=redis oom=once", "--jobs", "2", "--window", "10")
    by_scope = {run["delivery"]["cell"]["scope"]: run for run in runs}
    for run in runs:
        assert run["kills"]
        for kill in run["kills"]:
            # oomlab's own time is measured: the moment its monitor had the victim's pid and task (from the
            # kernel's line, the cgroup's OOM notice or a pidfd, whichever named it first)
            seen = kill["detected_mono"]
            assert kill["detected"]["oomlab"] == pytest.approx(seen["oomlab"] - kill["kernel_time_mono"], abs=1e-6)
            # seen from the kill counter or the OOM notice, it may come a few µs before the kernel's stamp
            assert -SEEN_BEFORE_STAMP_S <= kill["detected"]["oomlab"] < 1.0
    child_kill = next(k for k in by_scope["child"]["kills"] if k["role"] == "child")
    assert child_kill["detected"]["celery_pool_noticed"] > 0  # Celery's main process logged the death
    assert child_kill["detected"]["celery_worker_lost"] > 0  # and sent task-failed with WorkerLostError
    main_kill = next(k for k in by_scope["worker"]["kills"] if k["role"] == "main")
    assert main_kill["detected"]["celery_heartbeat_expiry"] > 1.0  # heartbeats every 2 s; nothing else tells
    detection = {d["pid"]: d for d in by_scope["worker"]["delivery"]["detection"]}
    assert detection[main_kill["pid"]]["celery_heartbeat_expiry"] == main_kill["detected"]["celery_heartbeat_expiry"]


def test_interrupted_lab_keeps_a_readable_record_and_leaves_nothing(tmp_path):
    proc = subprocess.Popen(
        oomlab_cmd(
            "lab",
            "delivery",
            "--only",
            "acks=late reject=on retry=off broker=redis oom=always",
            "--jobs",
            "2",
            "--results",
            str(tmp_path),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # both cells' workers are up and running the task
        records = [json.load(open(p)) for p in glob.glob(str(tmp_path / "lab-delivery-*" / "*" / "run.json"))]
        if len(records) == 2 and all(r["tasks"] for r in records):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # to the lab alone: it must stop its cells itself
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    with open(stdout.strip().splitlines()[-1]) as handle:
        summary = json.load(handle)
    assert summary["status"] == "interrupted"
    assert [cell["status"] for cell in summary["cells"]] == ["interrupted", "interrupted"]
    for cell in summary["cells"]:
        with open(os.path.join(cell["run_dir"], "run.json")) as handle:
            record = json.load(handle)
        assert record["status"] == "interrupted"
        assert_nothing_left(record["run_id"])
