"""Shared helpers: run the real `oomlab` CLI in a subprocess and check that nothing was left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
from oomlab.worker.leftovers import state_dir

# the VM lane runs under software emulation, several times slower: its time limits scale with this
TIME_SCALE = float(os.environ.get("OOMLAB_TEST_TIME_SCALE", "1"))
# tests/vm needs the lane's VM (a v2-only kernel, its users): `python -m vmlane tests` runs it there
collect_ignore = [] if os.environ.get("OOMLAB_IN_VM") else ["vm"]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    run_dir: str | None

    @property
    def record(self) -> dict:
        with open(os.path.join(self.run_dir, "run.json")) as handle:
            return json.load(handle)


def run_dir_from(stdout: str) -> str | None:
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines and os.path.isdir(lines[-1].strip()) else None


# timeline.png is drawn by a child Python, ~1.5 s of every run; no verdict reads it but the tests of the picture
# itself, which set it back (PICTURE_ENV). report.html's charts are still built on every run
os.environ.setdefault("OOMLAB_TIMELINE", "off")
# every pool child raises its oom_score_adj (oomlab.probe.recorder): right after a child's kill the
# kernel sometimes took the main process, a fresh child being smaller, and a test of child kills
# failed by chance (five times in five CI runs); no test here needs the kernel's own tie-break
os.environ.setdefault("OOMLAB_CHILD_OOM_SCORE_ADJ", "300")
PICTURE_ENV = {"OOMLAB_TIMELINE": "on"}

# Commands print for a pipe as wide as their tables need unless COLUMNS says otherwise (oomlab.report.console);
# a COLUMNS inherited from the test runner would fold the lines the tests read
os.environ.pop("COLUMNS", None)


def oomlab_cmd(*args: str) -> list[str]:
    if args and args[0] == "run" and TIME_SCALE > 1 and "--start-timeout" not in args:
        args = (*args, "--start-timeout", f"{60 * TIME_SCALE:g}")  # a worker starts slower under emulation
    return [sys.executable, "-m", "oomlab", *args]


@pytest.fixture
def oomlab(tmp_path):
    """Run `oomlab ARGS` with results under tmp_path; returns a Result."""

    def run(*args: str, env: dict | None = None, timeout: float = 150) -> Result:
        timeout *= TIME_SCALE
        argv = list(args)
        if argv and argv[0] == "run" and "--results" not in argv:
            argv += ["--results", str(tmp_path / "results")]
        proc = subprocess.run(
            oomlab_cmd(*argv), capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
        )
        return Result(proc.returncode, proc.stdout, proc.stderr, run_dir_from(proc.stdout))

    return run


def wait_for_tasks_running(results, timeout=60) -> str:
    """The run directory under `results` once its first task has started (and run.json lists it)."""
    deadline = time.monotonic() + timeout * TIME_SCALE
    while time.monotonic() < deadline:
        for name in os.listdir(results) if os.path.isdir(results) else []:
            probe = os.path.join(results, name, "probe.jsonl")
            if os.path.exists(probe) and '"prerun"' in open(probe).read():
                time.sleep(0.5 * TIME_SCALE)  # let a checkpoint of run.json include the tasks
                return os.path.join(results, name)
        time.sleep(0.1)
    raise AssertionError("no task started within the timeout")


def assert_nothing_left(run_id: str) -> None:
    """No process, cgroup, lease or socket of this run remains."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().decode(errors="replace")
            with open(f"/proc/{pid}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        assert not (run_id in cmdline and state != "Z"), f"process {pid} of run {run_id} is still running: {cmdline}"
    from oomlab.worker.limits import open_cgroup_backend

    backend = open_cgroup_backend(run_id)
    assert not os.path.exists(backend.path), f"cgroup {backend.path} was left behind"
    assert not os.path.exists(os.path.join(state_dir(), f"{run_id}.json")), "lease was left behind"


def pytest_collection_modifyitems(config, items):
    """Outside CI, the `docker` tests wait for an engine and a base image (`.ci/run` sets both up);
    with CI=true they always run, so a missing engine fails them instead."""
    if os.environ.get("CI") or not any(item.get_closest_marker("docker") for item in items):
        return
    base = os.environ.get("OOMLAB_DOCKER_BASE", "python:3.11-slim")
    try:
        ready = subprocess.run(["docker", "image", "inspect", base], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ready = False
    if not ready:
        skip = pytest.mark.skip(
            reason=f"no Docker engine with the base image {base} (CI=true fails instead; "
            f".ci/run installs and starts one)"
        )
        for item in items:
            if item.get_closest_marker("docker"):
                item.add_marker(skip)


def _controller(config) -> bool:
    return not hasattr(config, "workerinput")  # xdist's workers have it; the session's own process not


def pytest_sessionstart(session):
    if _controller(session.config):
        from tests.temp_leftovers import present

        session.config._temp_dirs_at_start = present()


def pytest_sessionfinish(session, exitstatus):
    """Once, after every test of every xdist worker: a worker's temp directory left behind fails the
    session (tests.temp_leftovers)."""
    if not _controller(session.config) or not hasattr(session.config, "_temp_dirs_at_start"):
        return
    from tests.temp_leftovers import left_behind

    left = left_behind(session.config._temp_dirs_at_start)
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        reporter.write("\n")
        reporter.write_sep("=", f"worker temp directories left behind: {', '.join(left)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
