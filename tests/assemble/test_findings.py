"""harness/assemble/findings.py on records built by hand: which recycling setting replaced a child (exit 155)
when the record holds no task list, as a load run's does not."""

from __future__ import annotations

import pytest
from oomlab.assemble.findings import recycling
from oomlab.config.options import RunConfig
from oomlab.record.schema import ProcessRecord, RunRecord


def _record(conf: dict) -> RunRecord:
    record = RunRecord(run_id="r", config=RunConfig("leak", "256MiB", 1, 1))
    record.worker.celery_conf = conf
    record.processes = [ProcessRecord(pid, "child", 0.0, 1.0, exit_code=155) for pid in (11, 12, 13)]
    return record


@pytest.mark.parametrize(
    "conf, phrase",
    [
        (
            {"worker_max_tasks_per_child": 11},
            "3 pool children were recycled (exit code 155) after worker_max_tasks_per_child=11 tasks",
        ),
        ({"worker_max_memory_per_child": 65536}, "above worker_max_memory_per_child (64.0 MiB)"),
        (
            {"worker_max_tasks_per_child": 11, "worker_max_memory_per_child": 65536},
            "by worker_max_tasks_per_child=11 or worker_max_memory_per_child (64.0 MiB); the record does not show",
        ),
        ({}, "for a reason the record does not show"),
    ],
)
def test_a_recycled_child_names_the_setting_the_run_set(conf, phrase):
    found = recycling(_record(conf))
    assert len(found) == 1 and phrase in found[0], found
