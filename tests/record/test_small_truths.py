"""Small truths: a task record's repr fits an assertion message, run ids are UTC whatever the app's
time zone, and a results directory oomlab makes is ignored by git."""

from __future__ import annotations

import os
import time

from oomlab.record.schema import TaskRecord
from oomlab.run.state import new_run_id
from oomlab.trust import RunDirectory


def test_a_task_records_repr_is_one_short_line_without_its_arguments():
    task = TaskRecord("0123456789abcdef", "alloc.alloc", "48 MiB", [b"x" * 10**6], 0.0, outcome="succeeded")
    task.peak_above_start_bytes, task.peak_is_exact = 50 * 2**20, True
    text = repr(task)
    assert len(text) < 160 and "\n" not in text, text
    assert "alloc.alloc" in text and "01234567" in text and "succeeded" in text and "+50.0 MiB" in text


def test_run_ids_are_utc_whatever_the_processs_time_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # what a Django TIME_ZONE does to the process
    time.tzset()
    try:
        before = time.strftime("%Y%m%d-%H%M", time.gmtime())
        run_id = new_run_id("noop")
        after = time.strftime("%Y%m%d-%H%M", time.gmtime())
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert run_id[:13] in (before, after), run_id


def test_a_results_directory_oomlab_makes_has_its_own_gitignore(tmp_path):
    tmp_path.chmod(0o700)
    made = tmp_path / "results"
    RunDirectory.create(str(made / "run-1"))
    assert (made / ".gitignore").read_text() == "*\n"
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    RunDirectory.create(str(theirs / "run-1"))
    assert not os.path.exists(theirs / ".gitignore")  # a directory the user made is left alone
