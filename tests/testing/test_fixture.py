"""The pytest fixture and assertions against a real worker: a test that loses the worker (a task's
MemoryError ends Celery's prefork worker) fails with the true cause, quickly, and the next test gets
a fresh worker; the assertions count the processes a task starts."""

from __future__ import annotations

import time

import pytest

from tests.pytester_project import oomlab_project

pytestmark = pytest.mark.integration
pytest_plugins = ["pytester"]


def test_the_test_that_lost_the_worker_fails_with_its_cause_and_the_next_has_a_fresh_one(pytester):
    oomlab_project(pytester, "oomlab.scenarios.worker_death:app", "256MiB")
    pytester.makepyfile(
        test_lost="""
        from oomlab.testing.assertions import assert_peak_rss_below
        from oomlab.scenarios.worker_death import memory_error, quick

        def test_loses_the_worker(oomlab_worker):
            memory_error.delay()
            assert_peak_rss_below(quick.delay(), "200 MiB", timeout=60)

        def test_after_it(oomlab_worker):
            assert quick.delay().get(timeout=30) == "done"
        """
    )
    started = time.monotonic()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:randomly", timeout=150)
    elapsed = time.monotonic() - started
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str()
    assert "test_loses_the_worker FAILED" in output or "FAILED test_lost.py::test_loses_the_worker" in output
    assert "MemoryError" in output and "main process exited with code" in output
    assert elapsed < 60, f"took {elapsed:.0f} s"


def test_assertions_see_the_processes_a_task_starts(pytester):
    oomlab_project(pytester, "oomlab.scenarios.task_tree:app", "256MiB")
    pytester.makepyfile(
        test_tree="""
        import pytest
        from oomlab.testing.assertions import OomlabAssertionError, assert_no_oom, assert_oom_killed, assert_peak_rss_below
        from oomlab.scenarios.task_tree import run_program

        def test_the_programs_memory_is_the_tasks(oomlab_worker):
            with pytest.raises(OomlabAssertionError, match="start RSS . its tree's growth"):
                assert_peak_rss_below(run_program.delay(96, 1), "100 MiB")

        def test_a_killed_program_is_the_tasks_kill(oomlab_worker):
            killed = run_program.delay(320, 1)
            assert_oom_killed(killed)
            with pytest.raises(OomlabAssertionError, match="descendant"):
                assert_no_oom()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:randomly", timeout=150)
    result.assert_outcomes(passed=2)
