"""One cell of the fidelity matrix in a process of its own: `python -m bench.fidelity_cell TOOL KIND
MIB`. It imports everything first, says `ready`, waits for `go` (the parent resets its memory
cgroup's peak then), runs the kind under the tool and prints the growth the tool reports as JSON.
A fresh process per cell: memory one kind freed cannot hide the next one's growth."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable

import psutil

from bench.memory_kinds import KINDS, MIB, import_all

Measure = Callable[[Callable[[int], None], int], int | None]
POLL = 0.01  # psutil's interval
WARM = 0.025  # a poller runs before the task starts, so the kind starts at any phase of its interval


def bare(kind: Callable[[int], None], mib: int) -> int | None:
    """No tool: the kernel's figure is the cgroup's, read by the parent."""
    kind(mib)
    return None


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass  # it exited between the listing and the read
    return total


def psutil_polling(kind: Callable[[int], None], mib: int) -> int | None:
    """RSS of the process and its children summed, every 10 ms, in a thread."""
    process = psutil.Process()
    start = _tree_rss(process)
    peak, done = [start], threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(process))
            time.sleep(POLL)

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(WARM)
    try:
        kind(mib)
    finally:
        done.set()
        thread.join()
    return peak[0] - start


def memory_profiler_children(kind: Callable[[int], None], mib: int) -> int | None:
    """memory_profiler's memory_usage with include_children, at its default 0.1 s interval: its
    highest sample above its first (taken as the call starts). Its sampler is a child process of
    this one, so include_children counts the sampler too, as it does for its users."""
    from memory_profiler import memory_usage

    samples = memory_usage((kind, (mib,)), include_children=True)
    return int((max(samples) - samples[0]) * MIB)


def tracemalloc_peak(kind: Callable[[int], None], mib: int) -> int | None:
    """tracemalloc's traced peak: Python's allocators (and numpy's, which reports to it)."""
    import tracemalloc

    tracemalloc.start()
    try:
        kind(mib)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def memray_native_follow_fork(kind: Callable[[int], None], mib: int) -> int | None:
    """memray's high-water mark with native traces and follow_fork: this process's peak plus each
    forked child's (a child's own file), an upper bound of the tree's heap."""
    import memray

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "cell.bin")
        with memray.Tracker(path, native_traces=True, follow_fork=True):
            kind(mib)
        return sum(
            memray.FileReader(os.path.join(tmp, name)).metadata.peak_memory
            for name in os.listdir(tmp)
            if name.startswith("cell.bin")
        )


LIMIT_MEMORY_TEST = """
import pytest
from bench.memory_kinds import KINDS

@pytest.mark.limit_memory("1 KB")
def test_kind():
    KINDS[{kind!r}]({mib})
"""
_ALLOCATED = re.compile(r"allocated ([\d.]+) ?([KMGT]?i?B)")
_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}


def pytest_memray_limit(kind: Callable[[int], None], mib: int) -> int | None:
    """pytest-memray's limit_memory set at 1 KB: its failure says how much the test allocated."""
    import pytest

    name = next(name for name, function in KINDS.items() if function is kind)
    with tempfile.TemporaryDirectory() as tmp:
        test = os.path.join(tmp, "test_kind.py")
        with open(test, "w") as handle:
            handle.write(LIMIT_MEMORY_TEST.format(kind=name, mib=mib))
        seen: list[str] = []

        class Capture:
            def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
                if report.when == "call" and report.failed:
                    seen.append(str(report.longrepr))

        args = [test, "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:xdist", "--memray"]
        with open(os.devnull, "w") as quiet:
            stdout, sys.stdout = sys.stdout, quiet
            try:
                pytest.main(args, plugins=[Capture()])
            finally:
                sys.stdout = stdout
    match = _ALLOCATED.search(" ".join(seen))
    return int(float(match.group(1)) * _UNITS[match.group(2)]) if match else 0  # passed: under 1 KB


TOOLS: dict[str, Measure] = {
    "bare": bare,
    "memray (native, follow_fork)": memray_native_follow_fork,
    "pytest-memray limit_memory": pytest_memray_limit,
    "memory_profiler (include_children)": memory_profiler_children,
    "tracemalloc": tracemalloc_peak,
    "psutil polling (10 ms)": psutil_polling,
}


TOOL_MODULES = {
    "memray (native, follow_fork)": ("memray",),
    "pytest-memray limit_memory": ("memray", "pytest", "pytest_memray"),
    "memory_profiler (include_children)": ("memory_profiler",),
    "tracemalloc": ("tracemalloc",),
}


def import_tool(tool: str) -> None:
    """The tool's modules, imported before the cell is measured (an import is no kind's growth)."""
    for module in TOOL_MODULES.get(tool, ()):
        importlib.import_module(module)


def main(argv: list[str]) -> int:
    tool, kind, mib = TOOLS[argv[0]], KINDS[argv[1]], int(argv[2])
    import_all()
    import_tool(argv[0])
    if argv[0] == "bare":  # the worker's pool process holds Celery and the app: what a fork copies on write
        importlib.import_module("bench.fidelity_tasks")
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    print(json.dumps({"reported_bytes": tool(kind, mib)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
