"""assemble(): evidence captured from real runs (tests/fixtures/evidence/capture.py) rebuilt into
records without a worker, a kernel or a broker, in milliseconds."""

from __future__ import annotations

import copy
import dataclasses
import json
import os

import pytest
from oomlab.assemble.build import assemble
from oomlab.observe.evidence import Evidence
from oomlab.record.schema import RunRecord
from oomlab.record.typed_json import from_json

HERE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "evidence")


def fixture(name: str) -> tuple[Evidence, RunRecord]:
    with open(os.path.join(HERE, f"{name}.json")) as handle:
        data = json.load(handle)
    return from_json(Evidence, data["evidence"]), RunRecord.from_json(data["record"])


@pytest.mark.parametrize("name", ["alloc-kill", "poison-loop"])
def test_the_saved_record_is_what_its_evidence_assembles_to(name):
    evidence, saved = fixture(name)
    before = copy.deepcopy((evidence, saved))
    assert assemble(evidence, saved) == saved
    assert (evidence, saved) == before, "assemble() changed its inputs"


@pytest.mark.parametrize("name", ["alloc-kill", "poison-loop"])
def test_a_record_reads_back_as_the_same_objects(name):
    _, saved = fixture(name)
    assert RunRecord.from_json(saved.to_json()) == saved


def test_a_kernel_logged_kill_names_its_task():
    _, record = fixture("alloc-kill")
    (kill,) = record.kills
    assert (kill.role, kill.task_name, kill.kernel_time_source) == ("child", "alloc.allocate", "kmsg")
    task = next(t for t in record.tasks if t.id == kill.task_id)
    assert task.outcome == "killed" and task.peak_is_exact is False
    assert all(t.peak_is_exact for t in record.tasks if t.outcome == "succeeded")


def without_kernel_log(evidence: Evidence) -> Evidence:
    """The same run as oomlab sees it where /dev/kmsg is unreadable (a container, a delegated user)."""
    return dataclasses.replace(evidence, observations=dataclasses.replace(evidence.observations, kernel_kills=[]))


def test_without_the_kernel_log_the_kill_is_inferred_no_later_than_the_victims_exit():
    evidence, saved = fixture("alloc-kill")
    record = assemble(without_kernel_log(evidence), saved)
    (kill,) = record.kills
    (logged,) = saved.kills
    assert (kill.pid, kill.task_id) == (logged.pid, logged.task_id)
    assert kill.kernel_time_source != "kmsg"
    assert kill.kernel_time_mono <= evidence.observations.exits[kill.pid]
    assert all(seconds >= 0 for seconds in kill.detected.values())


def test_a_poison_loop_is_one_task_killed_on_every_delivery():
    evidence, record = fixture("poison-loop")
    (task,) = record.tasks
    pids = {kill.pid for kill in record.kills}
    assert len(record.kills) == len(pids) == task.attempts >= 3
    assert {kill.task_id for kill in record.kills} == {task.id}
    assert task.outcome == "requeued"
    inferred = assemble(without_kernel_log(evidence), record)
    assert {kill.pid for kill in inferred.kills} == pids, "an inferred victim is a SIGKILLed exit, never another"
