"""The monitor thread's scheduling: real-time where root may, for that thread alone, and never
inherited by a process it starts."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from oomlab.observe.priority import NICE, raise_thread_priority


def _in_thread(realtime: bool) -> dict:
    seen: dict = {}

    def body() -> None:
        seen["got"] = raise_thread_priority(realtime=realtime)
        tid = threading.get_native_id()
        seen["policy"] = os.sched_getscheduler(tid)
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, tid)
        child = subprocess.run(
            [sys.executable, "-c", "import os; print(os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0))"],
            capture_output=True,
            text=True,
            check=True,
        )
        seen["child"] = tuple(int(x) for x in child.stdout.split())

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    return seen


def test_realtime_for_the_thread_alone_and_not_for_what_it_starts():
    seen = _in_thread(realtime=True)
    assert seen["got"] == "realtime"  # root here
    assert seen["policy"] & ~os.SCHED_RESET_ON_FORK == os.SCHED_FIFO
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the main thread keeps its own
    assert seen["child"][0] == os.SCHED_OTHER  # a program the thread starts is back on the normal policy


def test_nice_when_realtime_is_not_asked_for():
    seen = _in_thread(realtime=False)
    assert seen["got"] == "nice" and seen["policy"] == os.SCHED_OTHER and seen["nice"] == NICE
    assert os.getpriority(os.PRIO_PROCESS, 0) != NICE
