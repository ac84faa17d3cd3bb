"""The light core without its extras: the real CLI in a subprocess whose interpreter cannot import the
extra's libraries (a `sys.meta_path` finder, installed through a `sitecustomize` on PYTHONPATH, raises
the ModuleNotFoundError Python raises for a library that is not installed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

BLOCKER = '''
import sys


class NotInstalled:
    """Finds nothing for the blocked libraries, as if pip had never installed them."""

    BLOCKED = {blocked!r}

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
'''


def without(tmp_path, *modules: str) -> dict[str, str]:
    """An environment whose Python cannot import `modules`."""
    blocker = tmp_path / "not-installed"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(BLOCKER.format(blocked=set(modules)))
    path = os.pathsep.join(p for p in (str(blocker), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def oomlab(env, *args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "oomlab", *args], capture_output=True, text=True, env=env, timeout=60, cwd=cwd
    )


def test_the_blocker_really_blocks(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", "import numpy"], capture_output=True, text=True, env=without(tmp_path, "numpy")
    )
    assert done.returncode == 1 and "ModuleNotFoundError: No module named 'numpy'" in done.stderr


@pytest.mark.parametrize(
    "scenario, module",
    [
        ("native-alloc", "numpy"),
        ("native-alloc", "pandas"),
        ("image-decode", "PIL"),
        ("unbuffered-select", "sqlalchemy"),
    ],
)
def test_a_builtin_scenario_without_its_library_names_the_extra(tmp_path, scenario, module):
    done = oomlab(without(tmp_path, module), "run", scenario, "--results", str(tmp_path / "results"), cwd=tmp_path)
    assert done.returncode == 6, done.stderr  # docs/exit-codes.md: the scenario's own code failed
    assert done.stderr.strip().splitlines() == [
        f"oomlab: scenario {scenario} needs {module}, which oomlab's 'scenarios' extra installs: "
        "pip install 'oomlab[scenarios]'"
    ]
    assert not (tmp_path / "results").exists() or not [
        n for n in os.listdir(tmp_path / "results") if not n.startswith(".")
    ]


def test_a_users_scenario_missing_a_library_is_its_own_failure(tmp_path):
    """The extra's hint is for oomlab's own scenarios: a user's file names its import error."""
    path = tmp_path / "mine.py"
    path.write_text("import numpy\napp = None\ndef plan(ctx): pass\n")
    done = oomlab(without(tmp_path, "numpy"), "run", str(path), cwd=tmp_path)
    assert done.returncode == 6
    assert "scenario mine failed to import: ModuleNotFoundError: No module named 'numpy'" in done.stderr
    assert "oomlab[scenarios]" not in done.stderr and "Traceback" not in done.stderr


def test_the_list_of_scenarios_shows_what_each_needs(tmp_path):
    env = {**without(tmp_path, "numpy", "pandas", "PIL", "sqlalchemy"), "COLUMNS": "300"}
    done = oomlab(env, "scenarios", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    native = next(line for line in done.stdout.splitlines() if "native-alloc" in line)
    assert "needs numpy: pip install 'oomlab[scenarios]'" in native
    assert "default" in next(line for line in done.stdout.splitlines() if line.startswith("│ alloc "))  # in full


@pytest.mark.integration
def test_a_run_without_matplotlib_writes_its_report_and_says_once_what_draws_the_png(tmp_path):
    """A real worker under a real limit: the light core's run is whole, report.html and its SVG charts
    included; only timeline.png waits for the `png` extra."""
    results = tmp_path / "results"

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "oomlab", "run", "alloc", "--tasks", "2", "--results", str(results)],
            capture_output=True,
            text=True,
            env=without(tmp_path, "matplotlib"),
            timeout=150,
            cwd=tmp_path,
        )

    done = run()
    assert done.returncode == 0, done.stderr
    run_dir = done.stdout.strip().splitlines()[-1]
    assert os.path.isfile(os.path.join(run_dir, "report.html"))
    assert "<svg" in open(os.path.join(run_dir, "report.html")).read()
    assert not os.path.exists(os.path.join(run_dir, "timeline.png"))
    assert done.stderr.count("timeline.png needs matplotlib (pip install 'oomlab[png]')") == 1
    with open(os.path.join(run_dir, "run.json")) as handle:
        record = json.load(handle)
    assert (
        "timeline" not in record["files"] and "matplotlib is not installed" in record["environment"]["timeline_error"]
    )
    again = run()  # the same results directory: said once already, so only its run.json says it
    assert again.returncode == 0 and "needs matplotlib" not in again.stderr, again.stderr
