"""run.json's `load` and `delivery` sections, typed: read back as the same objects, in the JSON shape
they always had, null for a run without them (and `{}` in records written before they were typed),
and a field that does not fit refused in one sentence naming it."""

from __future__ import annotations

import copy
import json
import os

import pytest
from oomlab.errors import BadInput
from oomlab.record.schema import DeliverySection, RunRecord
from oomlab.record.stream import line_of
from oomlab.record.typed_json import from_json, to_json
from oomlab.run.load.from_tasks import load_from_tasks

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")


def _record() -> dict:
    with open(os.path.join(FIXTURES, "run-alloc", "run.json")) as handle:
        return json.load(handle)


def _lab_delivery() -> dict:
    with open(os.path.join(FIXTURES, "lab-delivery", "lab.json")) as handle:
        return json.load(handle)["cells"][0]["delivery"]


def test_a_record_written_before_the_sections_were_typed_reads_them_as_none():
    data = _record()
    data["load"] = {}  # as oomlab wrote it once load runs existed (this fixture is older: no key at all)
    assert data["delivery"] == {}
    record = RunRecord.from_json(data)
    assert record.load is None and record.delivery is None
    written = record.to_json()
    assert (written["load"], written["delivery"]) == (None, None)
    assert RunRecord.from_json(written) == record


def test_a_lab_cells_delivery_section_keeps_its_json_shape():
    raw = _lab_delivery()
    section = from_json(DeliverySection, raw)
    (verdict,) = section.verdicts
    assert verdict.outcome == "failed" and section.detection[0].celery_pool_noticed is not None
    assert section.cell.scope == "child" and section.broker_samples[0].ready == 0
    assert to_json(section) == raw  # the same names, nesting and values as the lab wrote before


def test_a_load_section_reads_back_as_the_same_objects():
    record = RunRecord.from_json(_record())
    lines = [line_of(task) for task in record.tasks]
    record.load = load_from_tasks(lines, record.started_mono, len(record.kills))
    back = RunRecord.from_json(json.loads(json.dumps(record.to_json())))
    assert back.load == record.load and back.load is not None
    assert back.load.counts.sent == len(record.tasks) and back.load.by_task["alloc.allocate"].latency.run_time.n > 0


@pytest.mark.parametrize(
    ("section", "edit", "named"),
    [
        ("load", lambda s: s.update(latency={"queue_wait": {"p95": "slow"}}), "load.latency.queue_wait.p95"),
        ("load", lambda s: s.update(soak={"projection": {"made_at_task": 3}}), "load.soak.projection"),
        ("load", lambda s: s.update(surprise=1), "load: unknown field 'surprise'"),
        ("delivery", lambda s: s["verdicts"][0].update(kills="many"), "delivery.verdicts[0].kills"),
        ("delivery", lambda s: s.pop("cell"), "delivery.cell"),
    ],
)
def test_a_section_field_that_does_not_fit_is_refused_in_one_sentence(section, edit, named):
    data = _record()
    data[section] = {"counts": {"sent": 1}} if section == "load" else copy.deepcopy(_lab_delivery())
    edit(data[section])
    with pytest.raises(BadInput) as caught:
        RunRecord.from_json(data, "run.json")
    assert named in caught.value.message and "\n" not in caught.value.message
