"""Plugin load: what installing oomlab costs every pytest session of a project, timed as a one-test
session in a fresh temporary project with oomlab's plugin (entry point `pytest11`) and with
`-p no:oomlab`, in alternating rounds so a busy machine slows both alike; medians are compared."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import entry_points

from bench import report

ROUNDS = 15
TARGET_SECONDS = 0.030  # issue 15: within ~30 ms of a session without the plugin
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the test checks the plugin is (or is not) there, so a session that silently skipped it cannot pass
TEST = """import os


def test_one(pytestconfig):
    assert pytestconfig.pluginmanager.hasplugin("oomlab") == (os.environ["OOMLAB_BENCH_PLUGIN"] == "1")
"""


def _session_seconds(project: str, with_plugin: bool) -> float:
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", project]
    if not with_plugin:
        argv[3:3] = ["-p", "no:oomlab"]
    env = {**os.environ, "PYTHONPATH": ROOT, "OOMLAB_BENCH_PLUGIN": "1" if with_plugin else "0"}
    env.pop("PYTEST_ADDOPTS", None)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the one-test session failed (plugin {'on' if with_plugin else 'off'}):\n{done.stdout}")
    return elapsed


def measure(rounds: int = ROUNDS) -> dict:
    with tempfile.TemporaryDirectory(prefix="oomlab-plugin-load-") as project:
        with open(os.path.join(project, "test_one.py"), "w") as handle:
            handle.write(TEST)
        for on in (True, False):  # warm the page cache and the .pyc files first
            _session_seconds(project, on)
        with_plugin: list[float] = []
        without: list[float] = []
        for index in range(rounds):
            for on in (True, False) if index % 2 == 0 else (False, True):
                (with_plugin if on else without).append(_session_seconds(project, on))
    return {
        "rounds": rounds,
        "with_plugin_seconds": statistics.median(with_plugin),
        "without_plugin_seconds": statistics.median(without),
        "difference_seconds": statistics.median(with_plugin) - statistics.median(without),
        "with_plugin_all": with_plugin,
        "without_plugin_all": without,
    }


def main(results_dir: str) -> dict:
    out = report.console()
    if not any(ep.name == "oomlab" for ep in entry_points(group="pytest11")):
        raise SystemExit("oomlab is not installed (no pytest11 entry point): pip install -e . first")
    figures = measure()
    report.table(
        f"a one-test pytest session, median of {figures['rounds']} alternating rounds",
        ["", "with oomlab", "-p no:oomlab", "difference"],
        [
            [
                "wall time",
                report.ms(figures["with_plugin_seconds"]),
                report.ms(figures["without_plugin_seconds"]),
                report.ms(figures["difference_seconds"]),
            ]
        ],
        out,
    )
    report.target(out, f"difference ≤ {TARGET_SECONDS * 1000:.0f} ms", figures["difference_seconds"] <= TARGET_SECONDS)
    return figures
