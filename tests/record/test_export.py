"""`oomlab export RUN_DIR --parquet OUT` without a worker: every task of a run (run.json's list and
its stream) becomes one typed row pandas reads back as written; bad input is one sentence."""

from __future__ import annotations

import json
import os
import sys

import pandas as pd
import pytest
from oomlab.cli.main import main as oomlab
from oomlab.config.options import RunConfig
from oomlab.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_RESULTS
from oomlab.record.export import BATCH_ROWS
from oomlab.record.schema import RunRecord, TaskRecord, write_json_atomic
from oomlab.record.stream import TASKS_FILE, RunTasks, TaskStream

from tests.record.test_stream_reader import _line

MIB = 1 << 20


@pytest.fixture
def run_dir(tmp_path) -> str:
    plan_task = TaskRecord("p", "plan.task", "", ["a"], 1.0, "succeeded", peak_rss_bytes=60 * MIB, peak_is_exact=True)
    record = RunRecord("r", RunConfig("alloc", "256MiB", 2, 1), tasks=[plan_task])
    write_json_atomic(str(tmp_path / "run.json"), record.to_json())
    stream = TaskStream(str(tmp_path))
    for index in range(BATCH_ROWS + 5):  # more than one batch (row group)
        stream.write(
            _line(index, None if index % 7 == 3 else 40 + index % 50, "killed" if index % 7 == 3 else "succeeded")
        )
    stream.close()
    with open(tmp_path / TASKS_FILE, "a") as handle:
        handle.write('{"id": "cut"')  # a run stopped mid-line
    return str(tmp_path)


def test_every_task_becomes_a_typed_row(run_dir, tmp_path, capsys):
    out = str(tmp_path / "tasks.parquet")
    assert oomlab(["export", run_dir, "--parquet", out]) == EXIT_OK
    printed = capsys.readouterr()
    assert printed.out.strip() == out and "half-written" in printed.err
    frame = pd.read_parquet(out, dtype_backend="numpy_nullable")
    lines = list(RunTasks(run_dir))
    assert len(frame) == len(lines) == BATCH_ROWS + 6 and list(frame["id"]) == [t.id for t in lines]
    assert frame["peak_rss_bytes"].dtype == "Int64" and frame["peak_is_exact"].dtype == "boolean"
    assert frame["peak_rss_bytes"].tolist() == [
        t.peak_rss_bytes if t.peak_rss_bytes is not None else pd.NA for t in lines
    ]
    assert json.loads(frame["args"][1]) == lines[1].args and frame["outcome"][4] == "killed"
    assert frame.groupby("name")["peak_rss_bytes"].max()["alloc.allocate"] == max(
        t.peak_rss_bytes or 0 for t in lines if t.name == "alloc.allocate"
    )


def test_bad_input_is_one_sentence(run_dir, tmp_path, capsys, monkeypatch):
    assert oomlab(["export", str(tmp_path / "missing"), "--parquet", str(tmp_path / "x.parquet")]) == EXIT_BAD_INPUT
    assert oomlab(["export", run_dir, "--parquet", str(tmp_path)]) == EXIT_BAD_INPUT
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as on a machine without the extra
    assert oomlab(["export", run_dir, "--parquet", str(tmp_path / "y.parquet")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "holds no run.json" in err and "is a directory" in err and "pip install 'oomlab[parquet]'" in err
    monkeypatch.undo()  # pyarrow back
    os.unlink(os.path.join(run_dir, TASKS_FILE))
    os.mkdir(os.path.join(run_dir, TASKS_FILE))  # not a file: one sentence, not a traceback
    assert oomlab(["export", run_dir, "--parquet", str(tmp_path / "z.parquet")]) == EXIT_BAD_INPUT
    assert "cannot read" in capsys.readouterr().err
    assert "Traceback" not in err and not list(tmp_path.glob("*.parquet*"))


def test_an_unwritable_destination_is_one_sentence_and_exit_10(run_dir, tmp_path, capsys):
    out = tmp_path / "no" / "such" / "dir" / "x.parquet"
    assert oomlab(["export", run_dir, "--parquet", str(out)]) == EXIT_RESULTS
    err = capsys.readouterr().err
    assert f"cannot write {out}" in err and "Traceback" not in err and "internal error" not in err
