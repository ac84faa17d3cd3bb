import os
import signal
import subprocess
import sys

import oomlab
import pytest
from oomlab.testing.measure import MeasuredCallKilled, measure_peak

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
    from oomlab import assert_no_oom, assert_oom_killed, assert_peak_rss_below, assert_requeued  # noqa: F401

    assert oomlab.measure_peak is measure_peak
    with pytest.raises(AttributeError):
        _ = oomlab.nothing_here


REUSED_HEAP = """
from oomlab.testing.measure import measure_peak

def allocate(mib):
    return len(b"\\x01" * (mib << 20))

big = b"\\x01" * (20 << 20); del big  # glibc raises its mmap threshold: 1-16 MiB blocks now come from the heap
pins, blocks = [], []
for _ in range(60):
    blocks.append(b"\\x01" * (1 << 20)); pins.append(bytearray(1000))
del blocks  # 60 MiB freed in the middle of the heap, still resident
print(measure_peak(allocate, 16).peak_above_start_bytes)
"""


def test_the_callers_freed_resident_heap_does_not_hide_the_calls_memory():
    """Found in CI: in a long-lived process the call reused pages the caller had freed but kept, and
    its peak read 0.5 MiB for a 16 MiB allocation."""
    out = subprocess.run([sys.executable, "-c", REUSED_HEAP], capture_output=True, text=True, check=True).stdout
    assert abs(int(out) - 16 * MIB) < 2 * MIB


PROGRAM = "b = bytearray(%d * 2**20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"


def run_program(mib):
    return subprocess.run([sys.executable, "-c", PROGRAM % mib], check=True).returncode


def start_program(mib):
    return subprocess.Popen([sys.executable, "-c", PROGRAM % mib + "import time; time.sleep(5)"]).pid


def test_a_program_the_call_runs_is_measured_apart_and_the_peak_is_not_called_exact():
    measured = measure_peak(run_program, 60)
    assert not measured.peak_is_exact and measured.peak_above_start_bytes < 20 * MIB
    assert measured.children_peak_rss_bytes > 60 * MIB  # RUSAGE_CHILDREN: the program it waited for
    assert "started processes" in measured.note and "RUSAGE_CHILDREN" in measured.note
    left = measure_peak(start_program, 8)
    try:
        assert not left.peak_is_exact and "did not wait for" in left.note
    finally:
        os.kill(left.value, signal.SIGKILL)
    assert measure_peak(allocate, 4).note is None  # no process started: exact, nothing to say


def test_the_repr_is_short_whatever_the_call_returned():
    measured = measure_peak(lambda: bytearray(MIB))
    text = repr(measured)
    assert len(text) < 200 and "<bytearray of 1048576>" in text and "peak_rss_bytes=" in text
    assert len(repr(measure_peak(lambda: list(range(100_000))))) < 300
