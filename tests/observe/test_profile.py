"""--profile for real: memray in the pool child of a real worker under a real limit, the sites it
names checked against lines that allocate known sizes, a task the kernel kills, a child program
memray cannot see, and memray's cost as measured in that worker (one tracker per pool child, each
task's window marked in its capture: no tracker started per task)."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess

import pytest
from oomlab.config.durations import format_seconds

from tests.conftest import TIME_SCALE, assert_nothing_left, oomlab_cmd, run_dir_from
from tests.pytester_project import oomlab_project

pytestmark = pytest.mark.integration
pytest_plugins = ["pytester"]
MIB = 2**20
SCENARIO = os.path.join(os.path.dirname(__file__), "..", "..", "scenarios", "memory_sites.py")


def site_line(tag: str) -> int:
    """The line of `# site: TAG` in the scenario, so the test follows the file if it is edited."""
    with open(SCENARIO) as handle:
        return next(number for number, text in enumerate(handle, 1) if text.rstrip().endswith(f"# site: {tag}"))


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    """One run: python + numpy, a no-op, a dd child program and a task grown until killed, all profiled
    with native frames."""
    results = tmp_path_factory.mktemp("profile") / "results"
    argv = ["run", "memory-sites", "--profile", "all", "--profile-native", "--param", "program_mib=48"]
    argv += ["--param", "noops=1"]
    proc = subprocess.run(
        oomlab_cmd(*argv, "--results", str(results)), capture_output=True, text=True, timeout=180 * TIME_SCALE
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = run_dir_from(proc.stdout)
    assert run_dir is not None, proc.stdout
    with open(os.path.join(run_dir, "run.json")) as handle:
        record = json.load(handle)
    assert record["status"] == "complete"
    assert record["environment"]["cleanup_errors"] == []
    assert_nothing_left(record["run_id"])
    tasks = {task["name"].split(".")[-1]: task for task in record["tasks"]}
    return proc.stdout, record, tasks, run_dir


def test_top_sites_name_the_python_function_and_the_numpy_caller(profiled):
    stdout, _, tasks, _ = profiled
    both = tasks["both"]
    assert both["outcome"] == "succeeded"
    first, second = both["top_allocations"][:2]
    assert (first["function"], first["line"]) == ("python_rows", site_line("python_rows"))
    assert first["file"].endswith("scenarios/memory_sites.py")
    assert abs(first["bytes"] - 40 * MIB) <= 0.05 * 40 * MIB
    assert (second["function"], second["line"]) == ("numpy_block", site_line("numpy_block"))
    assert abs(second["bytes"] - 24 * MIB) <= 0.05 * 24 * MIB
    assert any("numpy" in frame for frame in second["via"])  # numpy's own Python frame, kept below the site
    assert second["native"] and second["native"][0].startswith(("default_malloc", "PyDataMem"))
    assert re.search(rf"40\.0 MiB +python_rows \(scenarios/memory_sites\.py:{site_line('python_rows')}\)", stdout)
    assert re.search(rf"24\.0 MiB +numpy_block \(scenarios/memory_sites\.py:{site_line('numpy_block')}\)", stdout)


def test_a_killed_task_keeps_its_profile_up_to_the_kill(profiled):
    stdout, record, tasks, run_dir = profiled
    hoard = tasks["hoard"]
    assert hoard["outcome"] == "killed" and record["kills"][0]["task_id"] == hoard["id"]
    profile = hoard["profile"]
    assert profile["view"] == "last record"
    top = hoard["top_allocations"][0]
    assert (top["function"], top["line"]) == ("hoard", site_line("hoard"))
    # the task wrote how much it held after each 4 MiB chunk (a pwrite that survives the SIGKILL):
    # the capture has all of it, at most the one chunk allocated after the last write besides
    with open(os.path.join(run_dir, "hoard.progress")) as handle:
        held_by_the_task = int(handle.read())
    assert held_by_the_task <= top["bytes"] <= held_by_the_task + 4 * MIB + 4096
    killed_at = re.escape(f"killed at {profile['killed_at_bytes'] / MIB:.1f} MiB; at the last record,")
    assert re.search(rf"memory_sites\.hoard \w+: {killed_at} [\d.]+ MiB were held by:", stdout)
    assert re.search(rf"MiB +hoard \(scenarios/memory_sites\.py:{site_line('hoard')}\)", stdout)
    assert os.path.getsize(os.path.join(run_dir, profile["flamegraph"])) > 10_000


def test_a_child_program_is_named_as_unseen_not_shown_as_an_empty_profile(profiled):
    stdout, _, tasks, _ = profiled
    program = tasks["program"]
    assert program["profile"]["children"]["ran"]
    assert program["profile"]["children"]["largest_peak_bytes"] >= 48 * MIB
    assert program["profile"]["held_bytes"] < 4 * MIB  # what dd held is not in memray's view
    assert "whose memory memray cannot see" in program["profile"]["note"]
    assert "note: memray saw" in stdout and "child processes (the largest peaked at" in stdout
    assert tasks["both"]["profile"]["note"] is None


def test_the_printed_cost_is_the_measured_one(profiled):
    stdout, record, _, run_dir = profiled
    with open(os.path.join(run_dir, "probe.jsonl")) as handle:
        probe = [json.loads(line) for line in handle]
    calibration = [r for r in probe if r["ev"] == "profile_cost"]
    assert len(calibration) == 1  # one pool child measured, once
    bare, tracked = calibration[0]["bare_s"], calibration[0]["tracked_s"]
    assert len(bare) == len(tracked) == 10 and len(set(tracked)) > 1  # timings, not a constant
    measured = statistics.median(tracked) - statistics.median(bare)
    assert record["summary"]["profile"]["cost"]["per_task_s"] == pytest.approx(measured)
    said = f"+{format_seconds(measured)}" if measured > 0 else f"nothing measurable ({format_seconds(measured)}"
    assert f"memray costs {said}" in stdout  # a cost below zero is the timing's noise, never a gain
    assert "a worker near its limit can be killed profiled" in stdout
    setup = calibration[0]["setup_peak_growth"]  # the child's tracker starting: memray's set-up
    assert setup > MIB  # measured, and paid before any task (so no task's peak carries it)
    assert f"one-off set-up ({setup / MIB:.1f} MiB)" in stdout
    marks = [r["overhead_s"] for r in probe if r["ev"] == "profile_end"]
    assert len(marks) == 3  # both, noop, program (the killed task never reached its end mark)
    assert f"windows took {format_seconds(statistics.median(marks))} a task (median of 3)" in stdout
    assert "Python and native frames" in stdout  # --profile-native


def test_a_profiled_task_pays_no_tracker_start(profiled):
    """The old design started and stopped a memray Tracker around every chosen task: 10-20 ms each
    (8-110 ms per no-op task on a loaded machine), 5.4x on a no-op run. One tracker per pool child
    leaves a task only its two marks and memray's own tracking: measured in the worker, a tracked
    no-op body (with the marks) costs well under a millisecond more than a bare one."""
    _, record, _, run_dir = profiled
    cost = record["summary"]["profile"]["cost"]
    assert cost["per_task_s"] < 0.003, cost  # a tracker start+stop alone took >= 10 ms
    assert cost["marks_median_s"] < 0.002, cost
    with open(os.path.join(run_dir, "probe.jsonl")) as handle:
        probe = [json.loads(line) for line in handle]
    children = [r for r in probe if r["ev"] == "profile_child"]
    starts = [r for r in probe if r["ev"] == "profile_start"]
    assert len(children) <= 2  # one tracker per pool child (the killed child's replacement starts one)
    assert len(starts) == 4 and {s["path"] for s in starts} <= {c["path"] for c in children}


def test_one_capture_per_pool_child_and_one_flame_graph_per_execution(profiled):
    _, record, tasks, run_dir = profiled
    files = sorted(os.listdir(os.path.join(run_dir, "profiles")))
    captures = [f for f in files if f.endswith(".bin")]
    assert captures and all(f.startswith("child.") for f in captures) and len(captures) <= 2
    assert len([f for f in files if f.endswith(".html")]) == len(tasks) == 4
    windows = {(task["profile"]["capture"], task["profile"]["window"]) for task in tasks.values()}
    assert len(windows) == 4  # each task its own window
    for task in tasks.values():
        html = os.path.join(run_dir, task["profile"]["flamegraph"])
        with open(html) as handle:
            assert "memray" in handle.read(200_000).lower()
    assert record["summary"]["profile"]["read_errors"] == {}


def test_the_flame_graph_renders_offline_in_a_real_browser(profiled):
    """memray's HTML with its assets inlined (--no-web), opened by headless Chromium with no network:
    d3 draws one frame per call site, as wide as what it held."""
    _, _, tasks, run_dir = profiled
    html = os.path.join(run_dir, tasks["both"]["profile"]["flamegraph"])
    dom = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--proxy-server=127.0.0.1:9",  # no network: the page must carry everything it needs
            "--virtual-time-budget=8000",
            "--dump-dom",
            f"file://{html}",
        ],
        capture_output=True,
        text=True,
        timeout=120 * TIME_SCALE,
    ).stdout
    widths = {
        name: float(width)
        for width, name in re.findall(
            r'<g transform="[^"]*" width="([\d.]+)" height="\d+" name="([^"]*)" class="frame"', dom
        )
    }
    rows = next(w for name, w in widths.items() if "python_rows(py_mib)" in name)
    block = next(w for name, w in widths.items() if "numpy_block(np_mib)" in name)
    assert rows / block == pytest.approx(40 / 24, rel=0.05)


def test_profile_names_an_unknown_task_clearly(oomlab):
    result = oomlab("run", "memory-sites", "--profile", "nosuch")
    assert result.code == 2
    assert "--profile: no task named nosuch" in result.stderr and "Traceback" not in result.stderr


PLUGIN_APP = """
from celery import Celery

app = Celery("photoapp")


def decode(mib):
    return b"\\x01" * int(mib * 1024 * 1024)  # the line a failing test must name


@app.task
def thumbnail(mib):
    return len(decode(mib))
"""


@pytest.fixture
def photo_project(pytester):
    """A user's project whose app allocates on a known line; returns (pytester, that line's number)."""
    pytester.makepyfile(photoapp=PLUGIN_APP)
    oomlab_project(pytester, "photoapp:app")
    app_lines = (pytester.path / "photoapp.py").read_text().splitlines()
    return pytester, next(n for n, text in enumerate(app_lines, 1) if "must name" in text)


def run_pytest(pytester, *args):
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:randomly", *args, timeout=150
    )


def test_a_failing_marker_names_the_line_that_held_the_memory(photo_project):
    pytester, line = photo_project
    pytester.makepyfile(
        test_photo="""
        import pytest
        from photoapp import thumbnail

        @pytest.mark.peak_rss_below("60 MiB", profile=True)
        def test_thumbnail(oomlab_worker):
            thumbnail.delay(48).get(timeout=30)
    """
    )
    result = run_pytest(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*peaked at or above 60.0 MiB*",
            "*where the memory went (memray):*",
            "*photoapp.thumbnail *: peak * MiB; at the high-water mark memray saw * MiB held by:*",
            f"*48.0 MiB  decode (photoapp.py:{line})*",
        ]
    )


def test_oomlab_profile_puts_the_site_into_a_failing_assertion(photo_project):
    pytester, line = photo_project
    pytester.makepyfile(
        test_photo="""
        from oomlab import assert_peak_rss_below
        from photoapp import thumbnail

        def test_thumbnail(oomlab_worker):
            assert_peak_rss_below(thumbnail.delay(48), "60 MiB")
    """
    )
    result = run_pytest(pytester, "--oomlab-profile", "thumbnail")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*peaked at * MiB (VmHWM, exact)*over the 60.0 MiB limit*", f"*48.0 MiB  decode (photoapp.py:{line})*"]
    )


def test_the_gate_lists_the_site_that_grew(oomlab, tmp_path):
    runs = []
    for py_mib in ("16", "40"):
        result = oomlab(
            "run", "memory-sites", "--profile", "both", "--param", f"py_mib={py_mib}", "--param", "kill=false"
        )
        assert result.code == 0, result.stderr
        runs.append(result.run_dir)
    baseline = str(tmp_path / "baseline.json")
    assert oomlab("baseline", "save", runs[0], baseline).code == 0
    with open(baseline) as handle:
        saved = json.load(handle)["tasks"]["memory_sites.both"]["sites"]
    assert abs(saved["python_rows (scenarios/memory_sites.py)"] - 16 * MIB) <= 0.05 * 16 * MIB
    gate = oomlab("gate", "--baseline", baseline, "--current", runs[1], "--fail", "peak:10%")
    assert gate.code == 7, gate.stdout + gate.stderr  # the peak grew by 24 MiB: a regression
    grew = [line for line in gate.stdout.splitlines() if line.startswith("note: grew:")]
    assert grew and "python_rows (scenarios/memory_sites.py) held 16.0 MiB → 40.0 MiB" in grew[0], gate.stdout
    assert not any("numpy_block" in line for line in grew)  # 24 MiB in both runs: it did not grow
