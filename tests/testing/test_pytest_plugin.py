"""The pytest plugin through pytester: a user's project with its own Celery app, run by pytest in a
subprocess with the plugin loaded from its entry point, against a real worker under a real limit."""

from __future__ import annotations

import json
import os

import pytest
from oomlab.config.sizes import format_size

from tests.pytester_project import oomlab_project

pytestmark = pytest.mark.integration

pytest_plugins = ["pytester"]

APP = '''
import os

from celery import Celery

app = Celery("shopapp")
app.conf.task_track_started = True


@app.task
def resize(mib):
    data = b"\\x01" * int(mib * 1024 * 1024)
    return len(data)


@app.task(acks_late=True, reject_on_worker_lost=True)
def grow_once(marker):
    """OOM-killed on its first delivery only: the marker file tells a redelivery apart."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        held = [b"\\x01" * (8 << 20) for _ in range(100)]
    return "second delivery"


@app.task(acks_late=True, reject_on_worker_lost=True)
def never_fits():
    held = b"\\x01" * (400 << 20)  # at once: killed within ms, and redelivered to the other child as fast
'''


@pytest.fixture
def project(pytester):
    pytester.makepyfile(shopapp=APP)
    return oomlab_project(pytester, "shopapp:app", "200MiB", "markers = integration")


def run(project, *args):
    return project.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:randomly", *args, timeout=150
    )


def test_marker_passes_and_fails_on_the_exact_peak(project):
    project.makepyfile(
        test_marker="""
        import pytest
        from shopapp import resize

        @pytest.mark.peak_rss_below("150 MiB")
        def test_small(oomlab_worker):
            assert resize.delay(20).get(timeout=30) == 20 * 1024 * 1024

        @pytest.mark.peak_rss_below("80 MiB")
        def test_big(oomlab_worker):
            resize.delay(60).get(timeout=30)
    """
    )
    result = run(project)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*1 of 1 task(s) this test ran peaked at or above 80.0 MiB; the highest: * MiB (* MiB over)*",
            "*highest peaks:*",
            "*shopapp.resize?*? pid *: peak * MiB, exact (VmHWM), succeeded*",
            "*run directory: */results/*-shopapp-*",
        ]
    )
    assert "test_small" not in "".join(line for line in result.outlines if "FAILED" in line)


def test_assertions_pass_and_fail_with_measured_messages(project):
    project.makepyfile(
        test_assertions="""
        import pytest
        from oomlab import (OomlabAssertionError, assert_no_oom, assert_oom_killed, assert_peak_rss_below,
                             assert_requeued)
        from shopapp import resize

        def test_peak_passes(oomlab_worker):
            task = assert_peak_rss_below(resize.delay(10), "150 MiB")
            assert task.peak_is_exact and task.peak_rss_bytes > 10 * 1024 * 1024

        def test_peak_fails(oomlab_worker):
            assert_peak_rss_below(resize.delay(50), "64 MiB")

        def test_no_oom_passes(oomlab_worker):
            assert_no_oom()

        def test_oom_killed_fails_for_a_small_task(oomlab_worker):
            assert_oom_killed(resize.delay(1))

        def test_requeued_fails_without_a_kill(oomlab_worker):
            assert_requeued(resize.delay(1))

        def test_oom_killed_passes(oomlab_worker):
            assert_oom_killed(resize.delay(400))

        def test_no_oom_fails_after_the_kill(oomlab_worker):
            assert_no_oom()
    """
    )
    result = run(project, "-rA")
    outcomes = {
        line.split("::")[1].split()[0]: line.split()[0]
        for line in result.outlines
        if line.startswith(("PASSED ", "FAILED "))
    }
    assert outcomes == {
        "test_peak_passes": "PASSED",
        "test_peak_fails": "FAILED",
        "test_no_oom_passes": "PASSED",
        "test_oom_killed_fails_for_a_small_task": "FAILED",
        "test_requeued_fails_without_a_kill": "FAILED",
        "test_oom_killed_passes": "PASSED",
        "test_no_oom_fails_after_the_kill": "FAILED",
    }, result.outlines[-30:]
    result.stdout.fnmatch_lines_random(
        [
            "*shopapp.resize?*? peaked at * MiB (VmHWM, exact) in pid *: * MiB over the 64.0 MiB limit*",
            "*was not OOM-killed: it succeeded with a peak of * MiB under a 200.0 MiB limit*",
            "*was requeued 0 time(s) after 0 OOM kill(s), expected at least once*",
            "*1 OOM kill(s) in a worker limited to 200.0 MiB:*",
            "*pid * (child) running shopapp.resize?*? at * MiB RSS*",
            "*run directory: *",
        ]
    )


def test_requeued_passes_when_the_task_comes_back(project):
    project.makepyfile(
        test_requeue="""
        from oomlab import assert_requeued
        from shopapp import grow_once

        def test_requeued(oomlab_worker, tmp_path):
            result = grow_once.delay(str(tmp_path / "delivered"))
            assert_requeued(result, times=1)
            assert result.get(timeout=30) == "second delivery"

        def test_unregistered_task_is_named_without_waiting_out_the_timeout(oomlab_worker):
            import time
            import pytest
            from shopapp import app
            began = time.monotonic()
            with pytest.raises(AssertionError, match="the worker does not know the task shopapp.nowhere"):
                assert_requeued(app.send_task("shopapp.nowhere"))  # 60 s by default
            assert time.monotonic() - began < 20

        def test_every_delivery_is_counted(oomlab_worker):
            from oomlab import assert_oom_killed
            from shopapp import never_fits
            # with two children the redelivery starts within ms of the kill: counted once it has ended
            result = never_fits.delay()
            assert_oom_killed(result)
            assert_requeued(result, times=1)
    """
    )
    result = run(project, "--oomlab-concurrency=2")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*was requeued 2 time(s) after 3 OOM kill(s), expected 1 time(s) (outcome poison)*"])


def test_gate_first_run_writes_a_baseline_then_catches_a_regression(project):
    project.makepyfile(
        test_gate="""
        import os
        from shopapp import resize

        def test_work(oomlab_worker):
            resize.delay(float(os.environ["MIB"])).get(timeout=30)
    """
    )
    baseline = project.path / "baseline.json"
    os.environ["MIB"] = "10"
    try:
        first = run(project, f"--oomlab-baseline={baseline}", "--oomlab-fail=peak:10%")
        assert first.ret == 0
        first.stdout.fnmatch_lines(["*no baseline at *baseline.json: this run * is saved as the baseline*"])
        first.stdout.fnmatch_lines(["oomlab gate: baseline saved to *baseline.json; the next run is compared with it"])
        assert "passed (0 check(s))" not in first.stdout.str()
        saved = json.loads(baseline.read_text())["tasks"]["shopapp.resize"]
        assert saved["n"] == 1
        first.stdout.fnmatch_lines(["task * n * peak * p95 * growth * needs * kills", "-*"])  # what was saved
        first.stdout.fnmatch_lines([f"shopapp.resize * 1 * {format_size(saved['max'])} *"])
        os.environ["MIB"] = "60"
        second = run(project, f"--oomlab-baseline={baseline}", "--oomlab-fail=peak:10%")
    finally:
        del os.environ["MIB"]
    second.assert_outcomes(passed=1)
    assert second.ret == pytest.ExitCode.TESTS_FAILED  # every test passed; the gate failed the session
    second.stdout.fnmatch_lines(
        [
            "*oomlab gate*",
            "task *check *baseline *current *change *verdict",  # the table has its headers
            "*shopapp.resize  peak:10%  * MiB  * MiB  +*%*REGRESSION*",
            "*oomlab gate: 1 regression(s) in 1 task(s)*",
            "report: *gate.html",
        ]
    )
    page = second.stdout.str().split("report: ")[-1].split()[0]  # the gate's page, as `oomlab gate` writes it
    assert page.endswith("/gate.html") and "REGRESSION" in open(page).read().upper()


def test_a_session_with_an_oom_kill_does_not_become_the_first_baseline(project):
    project.makepyfile(
        test_killed="""
        from oomlab import assert_oom_killed
        from shopapp import grow_once

        def test_survives_a_kill(oomlab_worker, tmp_path):
            # oomlab's record of the kill, not Celery's redelivery: under load Celery's pool can take
            # its 5 s maintenance round (or longer) to notice the child is gone
            assert_oom_killed(grow_once.delay(str(tmp_path / "delivered")))
    """
    )
    baseline = project.path / "baseline.json"
    result = run(project, f"--oomlab-baseline={baseline}", "--oomlab-fail=peak:10%")
    if result.parseoutcomes().get("failed"):  # the kernel killed the main process too (seen in CI under load)
        result.stdout.fnmatch_lines(["*oomlab: the worker was lost during this test*"])
    else:
        result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED and not baseline.exists()
    result.stdout.fnmatch_lines(["*no baseline written to *baseline.json*cannot be the first*OOM kill*"])


def test_a_task_oom_killed_before_the_worker_was_lost_was_oom_killed(project):
    """Under a tight limit the kernel may kill the main process too, while the first victim's memory
    is still being freed (seen in CI): the task's kill stands, and the assertion says so."""
    project.makepyfile(
        test_lost="""
        import os, signal, time
        from oomlab import assert_oom_killed
        from shopapp import grow_once

        def test_killed_then_lost(oomlab_worker, tmp_path):
            result = grow_once.delay(str(tmp_path / "delivered"))
            deadline = time.monotonic() + 60
            while not any(
                run.killed for task in oomlab_worker.tasks() if task.id == result.id for run in task.executions
            ):
                assert time.monotonic() < deadline, "the task was not killed"
                time.sleep(0.05)
            worker = oomlab_worker.run.placement.workers[-1]
            os.kill(worker.pid, signal.SIGKILL)  # the main process lost after the kill, as the kernel may do
            worker.wait(timeout=30)
            assert oomlab_worker.worker_lost()
            assert assert_oom_killed(result).executions[0].killed
            open("asserted", "w").close()
    """
    )
    result = run(project)
    # the assertion held; the plugin still fails a test during which its worker was lost, and says why
    assert (project.path / "asserted").exists(), result.stdout.str()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*oomlab: the worker was lost during this test*"])
    assert "did not finish" not in result.stdout.str()


def test_fixture_without_an_app_is_a_usage_error(pytester):
    pytester.makepyfile(test_x="def test_x(oomlab_worker):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:randomly")
    assert (
        result.ret == pytest.ExitCode.USAGE_ERROR
        or "oomlab_worker needs your Celery app" in result.stdout.str() + result.stderr.str()
    )
    assert "oomlab_worker needs your Celery app" in result.stdout.str() + result.stderr.str()


def test_a_memory_without_a_unit_names_the_pytest_option(pytester):
    """oomlab_memory = 256: refused before any worker starts, in the pytest option's words."""
    oomlab_project(pytester, "oomlab.scenarios.alloc:app", "256")
    pytester.makepyfile(test_x="def test_x(oomlab_worker):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:randomly")
    output = result.stdout.str() + result.stderr.str()
    assert "--oomlab-memory / oomlab_memory 256 has no unit: write 256MiB" in output, output
    assert "def oomlab_worker" not in output and "Traceback" not in output, output  # the sentence, not our source
    assert "--memory " not in output and not (pytester.path / "results").exists()


def test_an_app_that_fails_to_import_is_named_as_the_app_at_the_users_line(pytester):
    pytester.makepyfile(brokenshop="import os\n\nraise RuntimeError('no settings')\n")
    oomlab_project(pytester, "brokenshop:app", "256MiB")
    pytester.makepyfile(test_x="def test_x(oomlab_worker):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:randomly")
    output = result.stdout.str() + result.stderr.str()
    assert "oomlab_app brokenshop:app failed to import: RuntimeError: no settings" in output, output
    assert f"({pytester.path / 'brokenshop.py'}, line 3)" in output and "scenario" not in output


@pytest.mark.docker
def test_the_worker_in_a_container_started_through_testcontainers(project):
    """oomlab_placement = docker: the same fixture and marker, the worker in a container whose memory
    cgroup is the run's group; the record says testcontainers started it (its labels)."""
    project.makepyfile(
        test_in_docker="""
        import pytest
        from shopapp import resize

        @pytest.mark.peak_rss_below("100 MiB")
        def test_small(oomlab_worker):
            assert resize.delay(20).get(timeout=60) == 20 * 1024 * 1024

        @pytest.mark.peak_rss_below("60 MiB")
        def test_big(oomlab_worker):
            resize.delay(70).get(timeout=60)
    """
    )
    result = run(project, "--oomlab-placement", "docker")
    result.assert_outcomes(passed=1, failed=1)
    [run_dir] = [p for p in (project.path / "results").iterdir() if not p.name.startswith(".")]
    record = json.loads((run_dir / "run.json").read_text())
    container = record["worker"]["container"]
    assert record["config"]["placement"] == "docker" and container["started_by"] == "testcontainers"
    assert container["labels"].get("org.testcontainers.lang") == "python", container["labels"]
    assert container["oom_killed"] is False and record["kills"] == []
    peaks = {t["peak_rss_bytes"] - t["start_rss_bytes"] for t in record["tasks"]}
    assert any(abs(p - 70 * 2**20) <= 2 * 2**20 for p in peaks), peaks
