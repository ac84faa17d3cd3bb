"""Tables printed to a pipe (a file, a CI log) keep every column whole: rich squeezes a console that is
not a terminal to 80 columns, which cut the kills table's task to `alloc… 600a4…`."""

from __future__ import annotations

import os

import pytest

from tests.conftest import assert_nothing_left

pytestmark = pytest.mark.integration


def test_a_killed_tasks_name_and_id_are_whole_in_a_piped_report(oomlab):
    # two tasks, the second over the limit (`every=2`): one kill, so the kills table is printed
    result = oomlab("run", "alloc", "--memory", "256MiB", "--tasks", "2", "--param", "every=2", env={"COLUMNS": ""})
    assert result.code == 0, result.stderr
    record = result.record
    killed = [kill for kill in record["kills"] if kill.get("task_id")]
    assert killed, "the over-limit task was not OOM-killed, so there is no kills table to check"
    kill = killed[0]
    row = next(line for line in result.stdout.splitlines() if str(kill["pid"]) in line)
    assert f"{kill['task_name']} {kill['task_id'][:8]}" in row, row
    assert "…" not in result.stdout, result.stdout
    assert os.path.basename(result.run_dir) == record["run_id"]
    assert_nothing_left(record["run_id"])


def test_columns_is_honoured_when_piped(oomlab):
    """COLUMNS=80 asks for 80 columns, in a pipe too; without it a pipe gets every column whole."""
    narrow = oomlab("scenarios", env={"COLUMNS": "80"})
    wide = oomlab("scenarios", env={"COLUMNS": ""})
    assert narrow.code == wide.code == 0
    assert max(map(len, narrow.stdout.splitlines())) <= 80 < max(map(len, wide.stdout.splitlines()))
