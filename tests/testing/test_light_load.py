"""The plugin as every pytest session of a project that installs oomlab meets it: loading it imports
no worker machinery, and `pytest --help` shows its options instead of crashing. Each check runs a
fresh interpreter, because this test session has long since imported everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEAVY = [
    "celery",
    "kombu",
    "redis",
    "oomlab.run.runner",
    "oomlab.testing.session",
    "oomlab.config.options",
    "rich",
    "pandas",
]


def _fresh_python(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ROOT}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run([sys.executable, *args], cwd=cwd or ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_loading_the_plugin_imports_no_worker_machinery():
    code = f"import json, sys\nimport oomlab.testing.pytest_plugin\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    done = _fresh_python("-c", code)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [], "loading oomlab.testing.pytest_plugin imported the worker machinery"


def test_a_pytest_session_through_the_entry_point_stays_light(tmp_path):
    """The entry point (`pytest11`), not a direct import: a test that uses no worker sees none of it."""
    (tmp_path / "test_plain.py").write_text(
        "import sys\n\n"
        "def test_plain(pytestconfig):\n"
        "    assert pytestconfig.pluginmanager.hasplugin('oomlab')\n"
        f"    assert [m for m in {HEAVY!r} if m in sys.modules] == []\n"
    )
    # pytest-memray (the fidelity benchmark's) imports rich at load: another plugin's imports are not oomlab's
    args = ("-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:memray")
    done = _fresh_python("-m", "pytest", *args, cwd=str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_pytest_help_lists_the_oomlab_options(tmp_path):
    done = _fresh_python("-m", "pytest", "--help", cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    for option in ("--oomlab-app", "--oomlab-memory", "--oomlab-baseline", "--oomlab-fail"):
        assert option in done.stdout
    assert "peak:10%" in done.stdout


@pytest.mark.parametrize(
    ("flag", "expected"), [("--markers", "peak_rss_below(limit)"), ("--fixtures", "oomlab_worker")]
)
def test_markers_and_fixtures_are_registered_without_a_worker(tmp_path, flag, expected):
    done = _fresh_python("-m", "pytest", flag, "-p", "no:cacheprovider", cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert expected in done.stdout
