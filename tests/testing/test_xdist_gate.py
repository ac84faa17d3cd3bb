"""Under `pytest -n 2` each xdist worker is a pytest session with its own oomlab worker and run;
the controller's gate judges every worker's tasks together, once."""

from __future__ import annotations

import glob
import json
import os
import tempfile

import pytest

from tests.pytester_project import oomlab_project

pytestmark = pytest.mark.integration

pytest_plugins = ["pytester"]

APP = """
from celery import Celery

app = Celery("twoapp")


@app.task
def small(mib):
    return len(b"\\x01" * int(mib * 1024 * 1024))


@app.task
def other(mib):
    return len(b"\\x02" * int(mib * 1024 * 1024))
"""


def test_the_gate_sees_every_xdist_workers_tasks(pytester):
    pytester.makepyfile(twoapp=APP)
    oomlab_project(pytester, "twoapp:app")
    pytester.makepyfile(
        test_a="from twoapp import small\n\ndef test_a(oomlab_worker):\n    small.delay(4).get(timeout=30)\n",
        test_b=(
            "import os\nfrom twoapp import other\n\n"
            "def test_b(oomlab_worker):\n    other.delay(int(os.environ.get('MIB', '4'))).get(timeout=30)\n"
        ),
    )
    baseline = pytester.path / "baseline.json"
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "oomlab-xdist-*")))
    args = ("-p", "no:cacheprovider", "-p", "no:randomly", "-n", "2", "--dist", "loadfile")
    result = pytester.runpytest_subprocess(*args, f"--oomlab-baseline={baseline}", timeout=150)
    result.assert_outcomes(passed=2)
    saved = json.loads(baseline.read_text())
    assert set(saved["tasks"]) == {"twoapp.small", "twoapp.other"}  # both workers' tasks, in one baseline
    assert saved["source_run"].count("+") == 1, saved["source_run"]  # from two runs, one per xdist worker
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "oomlab-xdist-*"))) == before  # nothing left behind
    # the task on the other xdist worker grows by 36 MiB: the controller's gate (default: growth) sees it
    os.environ["MIB"] = "40"
    try:
        grown = pytester.runpytest_subprocess(*args, f"--oomlab-baseline={baseline}", timeout=150)
    finally:
        del os.environ["MIB"]
    grown.assert_outcomes(passed=2)
    assert grown.ret == pytest.ExitCode.TESTS_FAILED
    grown.stdout.fnmatch_lines(["*twoapp.other  growth:10%,+2.0 MiB  *REGRESSION*"])
    assert "twoapp.small  growth" in grown.stdout.str()  # the first worker's task is judged too, and passes
