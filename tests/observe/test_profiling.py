"""The profile's pure parts (which tasks are chosen, what memray cannot see, which sites grew), and
memray's capture read back after its writer was SIGKILLed mid-allocation (real memray, real signal)."""

from __future__ import annotations

import os
import signal
import time

import pytest
from oomlab.observe.profiling.collect import unseen_note, untouched_note
from oomlab.observe.profiling.read import read_capture
from oomlab.probe.profile_choice import chosen, parse_names
from oomlab.record.profile import AllocationSite, ChildProcesses
from oomlab.workflows.gate.sites import grown_sites, sites_held
from oomlab.workflows.gate.stats import TaskStats

MIB = 2**20


def test_a_task_is_chosen_by_full_or_short_name_or_all():
    assert chosen(parse_names("alloc.allocate"), "alloc.allocate")
    assert chosen(parse_names("other, allocate"), "alloc.allocate")
    assert chosen(parse_names("all"), "anything.at_all")
    assert not chosen(parse_names("alloc"), "alloc.allocate")
    assert not chosen(parse_names(""), "alloc.allocate")


def _said(note: str | None) -> str:
    assert note is not None
    return note


def test_what_memray_cannot_see_is_said():
    assert "child processes (the largest peaked at 64.0 MiB)" in _said(
        unseen_note(MIB, 2 * MIB, ChildProcesses(ran=True, largest_peak_bytes=64 * MIB))
    )
    assert "memray saw 10.0 MiB of the task's 100.0 MiB growth" in _said(unseen_note(10 * MIB, 100 * MIB, None))
    assert unseen_note(90 * MIB, 100 * MIB, ChildProcesses(ran=False, largest_peak_bytes=None)) is None
    assert unseen_note(0, 2 * MIB, None) is None  # too small to be worth a sentence
    # a 320 MiB allocation being filled when the kernel killed the task at 150 MiB of growth
    assert (
        "memray counts the bytes the task asked for (320.0 MiB); its RSS had grown by 150.0 MiB when the kernel"
        in _said(untouched_note(320 * MIB, 150 * MIB, killed=True))
    )
    assert untouched_note(64 * MIB, 65 * MIB, killed=False) is None


def _stats(sites: dict[str, int]) -> TaskStats:
    return TaskStats(1, 1, 1, 1, 1, 1, 1, sites=sites)


def test_the_sites_that_grew_are_listed_largest_first():
    tasks = [
        [AllocationSite(function="f", file="/a/pkg/mod.py", line=3, bytes=5 * MIB, allocations=1)],
        [AllocationSite(function="f", file="/b/pkg/mod.py", line=9, bytes=7 * MIB, allocations=2)],
    ]
    assert sites_held(tasks) == {"f (pkg/mod.py)": 7 * MIB}  # a line moved and a checkout moved: one site
    baseline = {"t": _stats({"f (pkg/mod.py)": 7 * MIB, "g (pkg/mod.py)": MIB})}
    current = {"t": _stats({"f (pkg/mod.py)": 8 * MIB, "g (pkg/mod.py)": 9 * MIB, "h (x.py)": MIB // 2})}
    lines = grown_sites(baseline, current)
    assert lines[0] == "t: g (pkg/mod.py) held 1.0 MiB → 9.0 MiB at the peak (+8.0 MiB)"
    assert [line.split(":")[1].split(" held")[0].strip() for line in lines] == [
        "g (pkg/mod.py)",
        "f (pkg/mod.py)",
        "h (x.py)",
    ]
    assert grown_sites({"t": _stats({})}, current) == []  # a baseline without a profile: nothing to compare


def _grow(path: str, progress: str) -> None:
    import memray

    fd = os.open(progress, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    held = []
    with memray.Tracker(destination=memray.FileDestination(path, overwrite=True), native_traces=True):
        while True:
            held.append(bytearray(MIB))
            os.pwrite(fd, b"%20d" % len(held), 0)


def test_a_capture_whose_writer_was_sigkilled_loses_no_allocation(tmp_path):
    path, progress = str(tmp_path / "capture.bin"), str(tmp_path / "progress")
    pid = os.fork()
    if pid == 0:
        try:
            _grow(path, progress)
        finally:
            os._exit(1)
    deadline = time.monotonic() + 30  # a busy machine starts memray's tracker slowly
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            with open(progress) as handle:
                text = handle.read().strip()
        except FileNotFoundError:
            continue
        if text and int(text) > 10:
            break
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    with open(progress) as handle:
        reported = int(handle.read())  # chunks the child held after its last completed pwrite
    capture = read_capture(path, killed=True)
    top = capture.sites[0]
    assert top.function == "_grow"
    # every chunk it reported is in the capture, plus at most the one allocated after the last pwrite
    assert reported * MIB <= top.bytes <= (reported + 1) * MIB + 4096 * (reported + 1)
    assert reported > 10


def build_rows_for_report(rows: int) -> list[bytearray]:
    return [bytearray(MIB) for _ in range(rows)]  # the allocation sits in a <listcomp> frame


def test_a_site_inside_a_comprehension_is_named_by_the_function_around_it(tmp_path):
    import memray

    path = str(tmp_path / "capture.bin")
    pid = os.fork()
    if pid == 0:
        try:
            with memray.Tracker(destination=memray.FileDestination(path, overwrite=True)):
                held = build_rows_for_report(8)
                held += (lambda: [bytearray(MIB) for _ in range(4)])()
                del held
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    top, second = read_capture(path, killed=False).sites[:2]
    line = build_rows_for_report.__code__.co_firstlineno + 1
    assert (top.function, top.line) == ("build_rows_for_report", line), top
    assert top.file.endswith("test_profiling.py") and top.bytes >= 8 * MIB
    assert second.function == "test_a_site_inside_a_comprehension_is_named_by_the_function_around_it", second


def _windows_child(path: str) -> None:
    """A process tracked for its life as a pool child is: the tracker started from a thread of its
    own, two tasks' windows marked by the probe's own mark functions, work between them unmarked."""
    import threading

    import memray
    from oomlab.probe import profiler

    tracker = memray.Tracker(destination=memray.FileDestination(path, overwrite=True, compress_on_exit=False))
    starter = threading.Thread(target=tracker.__enter__)
    starter.start()
    starter.join()
    before = bytearray(6 * MIB)  # made before any window, freed inside the first: not the task's
    between = []
    profiler._oomlab_task_window_starts()
    held = bytearray(8 * MIB)
    del held, before
    kept = bytearray(3 * MIB)  # the window's peak was the 8 MiB above, when only it was held
    profiler._oomlab_task_window_ends()
    between.append(bytearray(20 * MIB))  # no window: a task that was not chosen
    profiler._oomlab_task_window_starts()
    build_rows_for_report(2)  # 2 MiB, freed at once
    kept += bytearray(MIB)  # a realloc: the old block freed, a 4 MiB one made inside the window
    profiler._oomlab_task_window_ends()
    tracker.__exit__(None, None, None)


def test_each_marked_window_gets_its_own_exact_peak_and_sites(tmp_path):
    from oomlab.observe.profiling.read import read_windows

    path = str(tmp_path / "child.bin")
    pid = os.fork()
    if pid == 0:
        try:
            _windows_child(path)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    windows = read_windows(path)
    assert sorted(windows) == [0, 1]
    first, second = windows[0], windows[1]
    assert first.view == second.view == "high-water mark"
    assert first.sites[0].function == "_windows_child" and first.sites[0].bytes == pytest.approx(8 * MIB, abs=4096)
    assert first.total_bytes == pytest.approx(8 * MIB, abs=64 * 1024)  # not the 6 MiB made before it
    assert not any(site.bytes >= 20 * MIB for w in windows.values() for site in w.sites)  # between windows
    # the second's peak: the 1 MiB temporary and the 4 MiB block realloc'd from it, held at once (the
    # old 3 MiB block's free is not the window's: it was made before)
    assert second.peak_bytes == pytest.approx(5 * MIB, abs=64 * 1024)
    assert (second.sites[0].function, second.sites[0].bytes) == ("_windows_child", pytest.approx(5 * MIB, abs=4096))
