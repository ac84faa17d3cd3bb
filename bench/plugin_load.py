"""Plugin load: what installing oomlab costs every pytest session of a project, timed as a one-test
session in a fresh temporary project with oomlab's plugin (entry point `pytest11`) and with
`-p no:oomlab`, in alternating rounds so a busy machine slows both alike; medians are compared. The
sessions' CPU time is shown beside their wall time: it moves far less when other work shares the cores."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import entry_points

from bench import report

ROUNDS = 15
TARGET_SECONDS = 0.030  # the plugin's budget: within ~30 ms of a session without it
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the test checks the plugin is (or is not) there, so a session that silently skipped it cannot pass
TEST = """import os


def test_one(pytestconfig):
    assert pytestconfig.pluginmanager.hasplugin("oomlab") == (os.environ["OOMLAB_BENCH_PLUGIN"] == "1")
"""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _session_seconds(project: str, with_plugin: bool) -> tuple[float, float]:
    """(wall, CPU) seconds of one pytest session in a fresh interpreter."""
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", project]
    if not with_plugin:
        argv[3:3] = ["-p", "no:oomlab"]
    env = {**os.environ, "PYTHONPATH": ROOT, "OOMLAB_BENCH_PLUGIN": "1" if with_plugin else "0"}
    env.pop("PYTEST_ADDOPTS", None)
    cpu_before, started = _children_cpu(), time.perf_counter()
    done = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    elapsed, cpu = time.perf_counter() - started, _children_cpu() - cpu_before
    if done.returncode != 0:
        raise RuntimeError(f"the one-test session failed (plugin {'on' if with_plugin else 'off'}):\n{done.stdout}")
    return elapsed, cpu


def measure(rounds: int = ROUNDS) -> dict:
    with tempfile.TemporaryDirectory(prefix="oomlab-plugin-load-") as project:
        with open(os.path.join(project, "test_one.py"), "w") as handle:
            handle.write(TEST)
        for on in (True, False):  # warm the page cache and the .pyc files first
            _session_seconds(project, on)
        times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for index in range(rounds):
            for on in (True, False) if index % 2 == 0 else (False, True):
                times[on].append(_session_seconds(project, on))
    figures: dict = {"rounds": rounds}
    for kind, column in (("wall", 0), ("cpu", 1)):
        with_plugin = statistics.median(t[column] for t in times[True])
        without = statistics.median(t[column] for t in times[False])
        figures[f"{kind}_with_plugin_seconds"] = with_plugin
        figures[f"{kind}_without_plugin_seconds"] = without
        figures[f"{kind}_difference_seconds"] = with_plugin - without
    figures["all_with_plugin"], figures["all_without_plugin"] = times[True], times[False]
    return figures


def main(results_dir: str) -> dict:
    out = report.console()
    if not any(ep.name == "oomlab" for ep in entry_points(group="pytest11")):
        raise SystemExit("oomlab is not installed (no pytest11 entry point): pip install -e . first")
    figures = measure()
    rows = [
        [
            label,
            report.ms(figures[f"{kind}_with_plugin_seconds"]),
            report.ms(figures[f"{kind}_without_plugin_seconds"]),
            report.ms(figures[f"{kind}_difference_seconds"]),
        ]
        for kind, label in (("wall", "wall time"), ("cpu", "CPU time"))
    ]
    report.table(
        f"a one-test pytest session, median of {figures['rounds']} alternating rounds",
        ["", "with oomlab", "-p no:oomlab", "difference"],
        rows,
        out,
    )
    met = figures["wall_difference_seconds"] <= TARGET_SECONDS
    report.target(out, f"wall-time difference ≤ {TARGET_SECONDS * 1000:.0f} ms", met)
    return figures
