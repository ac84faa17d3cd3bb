"""readable(): select while every fd is below FD_SETSIZE (its timeout counts in microseconds, which
the agent's millisecond counter watch needs), poll once one is not (select refuses it)."""

from __future__ import annotations

import math
import os
import statistics
import time

import pytest
from oomlab.observe.detectors.readable import FD_SETSIZE, readable


@pytest.fixture
def pipe():
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


@pytest.fixture
def high_pipe(pipe):
    """The same pipe's read end numbered past FD_SETSIZE, as an agent holding many files gets."""
    r, w = pipe
    high = FD_SETSIZE + 200
    os.dup2(r, high)
    yield high, w
    os.close(high)


@pytest.mark.parametrize("ends", ["pipe", "high_pipe"])
def test_a_written_pipe_is_readable_and_an_empty_one_times_out(ends, request):
    r, w = request.getfixturevalue(ends)
    assert readable([r], 0) == []
    started = time.monotonic()
    assert readable([r], 0.02) == []
    assert time.monotonic() - started >= 0.019
    os.write(w, b"x")
    assert readable([r], 1.0) == [r]
    assert readable([r, w], 0) == [r]  # a write end is never readable


def test_a_high_fd_beside_low_ones_is_waited_on(pipe, high_pipe):
    low, _ = pipe
    high, w = high_pipe
    os.write(w, b"x")
    assert sorted(readable([low, high], 1.0)) == sorted([low, high])  # one pipe, two numbers


@pytest.mark.parametrize("seconds", [0.0003, 0.0012])
def test_a_wait_is_not_rounded_up_to_whole_milliseconds(pipe, seconds):
    """The agent's counter is read every millisecond while a kill can come: poll's whole milliseconds
    made a 1.2 ms wait take 2 (median of 50 waits: this machine is noisy)."""
    r, _ = pipe
    waits = []
    for _ in range(50):
        started = time.perf_counter()
        readable([r], seconds)
        waits.append(time.perf_counter() - started)
    median = statistics.median(waits)
    whole_ms = math.ceil(seconds * 1000) / 1000  # what poll would have waited at least
    assert seconds <= median < whole_ms, f"a {seconds * 1e3:.1f} ms wait took {median * 1e3:.3f} ms"
