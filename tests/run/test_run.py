"""`oomlab run` start-up under a real limit (the backend's own tests are in tests/worker/limits)."""

from __future__ import annotations

import time

import pytest

from tests.conftest import assert_nothing_left

pytestmark = pytest.mark.integration


def test_startup_that_cannot_fit_is_reported_in_bounded_time(oomlab):
    started = time.monotonic()
    result = oomlab("run", "startup", "--memory", "256MiB", "--concurrency", "4")
    assert time.monotonic() - started < 60
    assert result.code == 4
    assert "worker killed during start-up: 4 children ×" in result.stderr
    assert "> 256.0 MiB limit" in result.stderr
    record = result.record
    assert record["status"] == "worker_start_failed"
    assert record["kills"] and all(k["during_startup"] for k in record["kills"])
    assert_nothing_left(record["run_id"])


def test_startup_fits_with_one_child(oomlab):
    result = oomlab("run", "startup", "--memory", "256MiB", "--concurrency", "1", "--tasks", "2")
    assert result.code == 0, result.stderr
    assert [t["outcome"] for t in result.record["tasks"]] == ["succeeded", "succeeded"]


def test_limit_below_what_the_main_process_needs(oomlab):
    result = oomlab("run", "alloc", "--memory", "24MiB", "--concurrency", "1", "--start-timeout", "30")
    assert result.code == 4
    assert "main process was OOM-killed during start-up" in result.stderr
    assert_nothing_left(result.record["run_id"])
