"""What oomlab prints of text another user could have written (a dead letter in a shared Redis, a
task name in a run record): its control characters are shown escaped, never sent to the terminal,
so a name like `\\x1b]0;owned\\x07\\x1b[2J` cannot retitle or clear it or forge a line."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import uuid

import pytest
import redis
from oomlab.agent.store import Store
from oomlab.report.console import SafeConsole
from rich.table import Table

from tests.agent.conftest import REDIS

ESCAPES = "\x1b]0;owned\x07\x1b[2J\r\x9b31m\u202e"
CONTROL = set("\x1b\x07\r\x9b\u202e")


@pytest.mark.services
def test_replay_lists_a_dead_letter_with_escape_codes_escaped():
    app = f"printable{uuid.uuid4().hex[:8]}"
    store = Store(REDIS, app)
    task_id = f"id{ESCAPES}\nforged-id\tforged-name\t9 kills"
    try:
        store.dead_letter(task_id, {"name": f"tasks.{ESCAPES}", "args": [1]}, [{}], "killed")
        listed = subprocess.run(
            [sys.executable, "-m", "oomlab", "replay", "--redis", REDIS, "--app", app],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert listed.returncode == 0, listed.stderr
        assert not set(listed.stdout) & CONTROL, repr(listed.stdout)
        assert listed.stdout.count("\n") == 1, "a task id forged a line of its own"
        assert "\\x1b]0;owned\\x07" in listed.stdout and "\\u202e" in listed.stdout
        missing = subprocess.run(
            [
                sys.executable,
                "-m",
                "oomlab",
                "replay",
                "--redis",
                REDIS,
                "--broker",
                REDIS,
                "--app",
                app,
                f"gone{ESCAPES}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert missing.returncode == 2 and "\x1b" not in missing.stderr and "\\x1b" in missing.stderr
    finally:
        redis.Redis.from_url(REDIS).delete(store.dead_key)


def test_reports_print_record_text_with_escape_codes_escaped():
    out = io.StringIO()
    console = SafeConsole(file=out, force_terminal=True, width=200)  # a terminal: rich adds its own colours
    table = Table("task")
    table.add_row(f"tasks.{ESCAPES}")
    console.print(table)
    console.print(f"[bold]kill[/bold] of tasks.{ESCAPES}")
    printed = out.getvalue()
    without_styling = re.sub(r"\x1b\[[0-9;]*m", "", printed)  # rich's own colours, and only those
    assert not set(without_styling) & CONTROL, repr(printed)
    assert without_styling.count("\\x1b") == 4, repr(printed)  # both ESCs of both lines, shown escaped
    assert "\x1b[1m" in printed, "rich's own styling was lost"
