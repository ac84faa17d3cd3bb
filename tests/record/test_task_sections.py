"""A task's dict-shaped sections, typed: the processes it started (alive, seen, OOM-killed), its memory
by kind, and --profile's sites and capture (with the run's profile in the summary). Records written
before they were typed read unchanged, each reads back as the same objects in the JSON shape it
always had, and a field that does not fit is refused in one sentence naming it."""

from __future__ import annotations

import copy
import json
import os
import shutil

import pytest
from oomlab.cli.main import main as oomlab
from oomlab.errors import EXIT_BAD_INPUT, BadInput
from oomlab.record.descendants import AliveDescendant, Descendant, KilledDescendant
from oomlab.record.kinds import KindBytes, MemoryKinds, kind_bytes
from oomlab.record.profile import AllocationSite, ChildProcesses, ProfileCost, RunProfile, TaskProfile
from oomlab.record.schema import RunRecord

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
MIB = 2**20

# each section as oomlab wrote it while it was a dict (the key order and the absent keys included)
SITE = {
    "function": "python_rows",
    "file": "scenarios/memory_sites.py",
    "line": 31,
    "bytes": 40 * MIB,
    "allocations": 3,
    "via": ["__init__ (numpy/_core/numeric.py:12)"],
    "native": [],
}
PROFILE = {
    "capture": "profiles/task-1.bin",
    "view": "last record",
    "held_bytes": 41 * MIB,
    "memray_peak_bytes": 42 * MIB,
    "task_growth_bytes": 40 * MIB,
    "killed_at_bytes": 60 * MIB,
    "children": None,
    "overhead_s": None,
    "sites": [SITE],
    "last_snapshot_before_kill_s": 0.0042,
    "note": None,
    "flamegraph": "profiles/task-1.html",
    "executions": 2,
}
DESCENDANT = {
    "pid": 41,
    "command": "dd if=/dev/zero",
    "peak_rss_bytes": 48 * MIB,
    "peak_is_exact": True,
    "ended": "exited",
}
KILLED = {
    "pid": 42,
    "command": "python -c hoard",
    "rss_bytes": 200 * MIB,
    "kinds": {"anon": 190 * MIB, "file": MIB, "shmem": 0},
    "kernel_time_mono": 1234.5,
}


def _fixture() -> dict:
    with open(os.path.join(FIXTURES, "run-alloc", "run.json")) as handle:
        return json.load(handle)


def _with_sections() -> dict:
    data = _fixture()
    task = data["tasks"][0]
    task["descendants"] = [copy.deepcopy(DESCENDANT)]
    task["killed_descendants"] = [copy.deepcopy(KILLED)]
    task["memory_kinds"] = {
        "tree_end": {"anon": 9, "file": 2, "shmem": 3},
        "at_kill": {"anon": 40, "file": 0, "shmem": 0},
    }
    task["top_allocations"] = [copy.deepcopy(SITE)]
    task["profile"] = copy.deepcopy(PROFILE)
    task["executions"][0]["descendants_alive"] = [{"pid": 43, "command": "sleep 9", "peak_rss": 4096}]
    data["summary"]["profile"] = {"tasks": ["all"], "captures": 1, "cost": None, "read_errors": {}}
    return data


@pytest.mark.parametrize(
    "path",
    [
        os.path.join("run-alloc", "run.json"),
        os.path.join("evidence", "alloc-kill.json"),
        os.path.join("evidence", "poison-loop.json"),
    ],
)
def test_records_written_before_the_sections_were_typed_read_unchanged(path):
    with open(os.path.join(FIXTURES, path)) as handle:
        data = json.load(handle)
    data = data.get("record", data)
    record = RunRecord.from_json(data)
    for raw, task in zip(data["tasks"], record.tasks, strict=True):
        kinds = raw.get("memory_kinds") or {}
        assert isinstance(task.memory_kinds, MemoryKinds) and bool(task.memory_kinds) == bool(kinds)
        for moment, figures in kinds.items():
            assert getattr(task.memory_kinds, moment) == KindBytes(**figures)
    assert RunRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


def test_the_sections_read_back_as_objects_in_the_shape_they_always_had():
    data = _with_sections()
    record = RunRecord.from_json(data)
    task = record.tasks[0]
    assert task.descendants == [Descendant(41, "dd if=/dev/zero", 48 * MIB, True, "exited")]
    assert task.killed_descendants == [
        KilledDescendant(42, "python -c hoard", 200 * MIB, KindBytes(190 * MIB, MIB, 0), 1234.5)
    ]
    assert task.executions[0].descendants_alive == [AliveDescendant(43, "sleep 9", 4096)]
    site = AllocationSite(
        "python_rows", "scenarios/memory_sites.py", 31, 40 * MIB, 3, ("__init__ (numpy/_core/numeric.py:12)",)
    )
    assert task.top_allocations == [site]
    assert task.profile == TaskProfile(
        "profiles/task-1.bin", "last record", 41 * MIB, 42 * MIB, 40 * MIB, 60 * MIB, None, None, [site], 0.0042,
        flamegraph="profiles/task-1.html", executions=2,
    )  # fmt: skip
    assert record.summary.profile == RunProfile(["all"], 1)
    assert kind_bytes(task.memory_kinds, "anon", "at_kill") == task.memory_kinds.at_kill.anon  # type: ignore[union-attr]
    written = json.loads(json.dumps(record.to_json()))
    for key in ("descendants", "killed_descendants", "top_allocations", "profile", "memory_kinds"):
        assert written["tasks"][0][key] == data["tasks"][0][key], key  # the same names, nesting and values
    assert written["summary"]["profile"] == data["summary"]["profile"]
    assert RunRecord.from_json(written) == record


def test_a_profile_cost_and_childrens_figures_keep_their_names():
    data = _with_sections()
    data["tasks"][0]["profile"]["children"] = {"ran": True, "largest_peak_bytes": 48 * MIB}
    data["summary"]["profile"]["cost"] = cost = {
        "noop_runs": 5,
        "noop_bare_s": 0.0001,
        "noop_tracked_s": 0.002,
        "per_task_s": 0.0019,
        "setup_peak_bytes": 3 * MIB,
        "per_task_peak_bytes": 2048.5,
        "start_stop_median_s": 0.003,
        "start_stop_n": 4,
    }
    record = RunRecord.from_json(data)
    assert record.tasks[0].profile is not None and record.tasks[0].profile.children == ChildProcesses(True, 48 * MIB)
    assert record.summary.profile is not None and record.summary.profile.cost == ProfileCost(**cost)
    assert record.to_json()["summary"]["profile"]["cost"] == cost


def test_figures_that_were_left_out_of_the_dicts_stay_out():
    data = _with_sections()
    profile = data["tasks"][0]["profile"]
    profile.update(view="high-water mark", killed_at_bytes=None)
    del profile["last_snapshot_before_kill_s"]  # a task that was not killed had none
    data["summary"]["profile"]["cost"] = {"start_stop_median_s": 0.003, "start_stop_n": 4}  # no calibration line
    data["tasks"][0]["memory_kinds"] = {"process_end": {"anon": 5, "file": 1, "shmem": 0}}
    written = RunRecord.from_json(data).to_json()
    assert written["tasks"][0]["profile"] == profile
    assert written["summary"]["profile"] == data["summary"]["profile"]
    assert written["tasks"][0]["memory_kinds"] == data["tasks"][0]["memory_kinds"]


def _task(data: dict) -> dict:
    return data["tasks"][0]


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda d: _task(d)["descendants"][0].update(pid="41"), "tasks[0].descendants[0].pid"),
        (lambda d: _task(d)["descendants"][0].pop("ended"), "tasks[0].descendants[0].ended: is missing"),
        (lambda d: _task(d)["killed_descendants"][0].update(kinds={"anon": 1}), "tasks[0].killed_descendants[0].kinds"),
        (lambda d: _task(d)["memory_kinds"].update(tree_end={"anon": "x", "file": 0, "shmem": 0}), "tasks[0].memory_kinds.tree_end.anon"),
        (lambda d: _task(d)["memory_kinds"].update(swap_end={}), "tasks[0].memory_kinds: unknown field 'swap_end'"),
        (lambda d: _task(d).update(memory_kinds=[]), "tasks[0].memory_kinds"),
        (lambda d: _task(d)["top_allocations"][0].update(bytes=None), "tasks[0].top_allocations[0].bytes"),
        (lambda d: _task(d)["profile"].update(children={"ran": "yes"}), "tasks[0].profile.children"),
        (lambda d: _task(d)["profile"].pop("held_bytes"), "tasks[0].profile.held_bytes: is missing"),
        (lambda d: _task(d)["executions"][0]["descendants_alive"][0].update(peak_rss="4k"), "descendants_alive[0].peak_rss"),
        (lambda d: d["summary"]["profile"].update(cost={"per_task_s": "slow"}), "summary.profile.cost.per_task_s"),
        (lambda d: d["summary"]["profile"].update(read_errors=["x"]), "summary.profile.read_errors"),
    ],
)  # fmt: skip
def test_a_task_section_that_does_not_fit_is_refused_in_one_sentence(edit, named):
    data = _with_sections()
    edit(data)
    with pytest.raises(BadInput) as caught:
        RunRecord.from_json(data, "run.json")
    assert named in caught.value.message and "\n" not in caught.value.message
    assert caught.value.message.startswith("run.json does not fit oomlab.run/3: ")


def test_the_cli_refuses_a_wrongly_shaped_section_with_exit_2_and_one_sentence(tmp_path, capsys):
    run_dir = tmp_path / "run-alloc"
    shutil.copytree(os.path.join(FIXTURES, "run-alloc"), run_dir)
    data = _with_sections()
    data["tasks"][0]["descendants"][0]["peak_is_exact"] = "yes"
    (run_dir / "run.json").write_text(json.dumps(data))
    assert oomlab(["export", str(run_dir), "--parquet", str(tmp_path / "tasks.parquet")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "tasks[0].descendants[0].peak_is_exact" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "tasks.parquet").exists()
