import os
import signal

import pytest

import harness
from harness.measure import MeasuredCallKilled, measure_peak

MIB = 1024 * 1024


def allocate(mib):
    data = b"\x01" * (mib * MIB)
    return len(data)


def test_exact_peak_of_one_call_and_its_value():
    small, big = measure_peak(allocate, 16), measure_peak(allocate, 80)
    assert small.value == 16 * MIB and big.value == 80 * MIB
    assert small.peak_is_exact
    # the bytes object is the call's whole extra footprint: within 2 MiB of what it asked for
    assert abs(big.peak_above_start_bytes - 80 * MIB) < 2 * MIB
    assert abs(small.peak_above_start_bytes - 16 * MIB) < 2 * MIB


def test_exceptions_come_back_and_the_caller_is_untouched():
    with pytest.raises(ZeroDivisionError):
        measure_peak(lambda: 1 / 0)
    held = []
    measure_peak(held.append, 1)  # the call ran in a forked child: the caller's list is unchanged
    assert held == []


def die():
    os.kill(os.getpid(), signal.SIGKILL)  # evaluated in the child: the measured call kills itself


def test_a_killed_call_is_reported():
    with pytest.raises(MeasuredCallKilled, match="SIGKILL"):
        measure_peak(die)


def test_the_testing_api_is_importable_from_the_package():
    from harness import assert_no_oom, assert_oom_killed, assert_peak_rss_below, assert_requeued  # noqa: F401

    assert harness.measure_peak is measure_peak
    with pytest.raises(AttributeError):
        harness.nothing_here
