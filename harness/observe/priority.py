"""A watching thread's scheduling: on a busy machine a woken thread otherwise waits for a core behind
every runnable process, and that wait is most of a detection's time. Only the calling thread changes
(the process's other threads and the worker keep theirs), and only where the kernel allows it."""

from __future__ import annotations

import os
import threading

NICE = -10  # where real-time scheduling is refused or not asked for (root, CAP_SYS_NICE)
RT_PRIORITY = 1  # the lowest real-time priority: ahead of every normal process, behind the kernel's own


def raise_thread_priority(realtime: bool = False) -> str | None:
    """This thread to SCHED_FIFO at RT_PRIORITY when `realtime` and allowed (a process it forks starts
    back on the normal policy), else to NICE: "realtime", "nice", or None when neither was allowed.
    The kernel's real-time throttling (95 % of each second by default) bounds what a stuck thread takes."""
    tid = threading.get_native_id()
    if realtime:
        try:
            os.sched_setscheduler(tid, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(RT_PRIORITY))
            return "realtime"
        except OSError:
            pass  # no CAP_SYS_NICE, or a cgroup without a real-time budget (containers)
    try:
        os.setpriority(os.PRIO_PROCESS, tid, NICE)
    except OSError:
        return None
    return "nice"
