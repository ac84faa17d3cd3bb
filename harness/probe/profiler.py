"""Runs in the pool child: one memray Tracker for the child's whole life (started at
worker_process_init, one capture file per child), and a mark at each chosen task's prerun and
postrun, so that a reader finds the task's window in the capture and its peak inside it.

Why not a tracker per task: starting and stopping a memray Tracker took 10-20 ms a task here (it
patches every loaded library's symbols each time), which made --profile cost 5.4x on no-op tasks.
A tracker that stays on costs what memray costs a process, and a mark is one allocation.

Imported by the probe after its own handlers are connected, so Celery calls the probe first at
prerun (VmHWM reset) and first at postrun (VmHWM read).
"""

from __future__ import annotations

import itertools
import os
import resource
import threading
import time

from celery import signals
from oomlab.probe import procfs
from oomlab.probe.channel import emit
from oomlab.probe.profile_choice import (
    DIR_ENV,
    END_MARK,
    NAMES_ENV,
    NATIVE_ENV,
    START_MARK,
    chosen,
    parse_names,
)

NAMES = parse_names(os.environ.get(NAMES_ENV))
NATIVE = os.environ.get(NATIVE_ENV) == "1"
CALIBRATION_RUNS = 10  # no-op executions without and with the tracker, in one pool child
_child: dict = {}  # this process's tracker and capture path
_active: dict = {}  # the chosen task running now: its id and window number
_windows = itertools.count()


def _tracker(path: str):
    import memray

    return memray.Tracker(
        # buffered=False: records go through a shared mmap of the file, so a SIGKILL loses none of
        # them; no compression at exit, which would hold the pool child as it stops
        destination=memray.FileDestination(path, overwrite=True, compress_on_exit=False, buffered=False),
        native_traces=NATIVE,  # --profile-native: C extensions' frames (numpy, PIL), at a cost per allocation
        follow_fork=True,  # a task's forked Python children write <path>.<pid>
    )


def _oomlab_task_window_starts() -> None:
    bytearray(START_MARK)  # one allocation memray records in order: the window's first edge


def _oomlab_task_window_ends() -> None:
    bytearray(END_MARK)  # and its last


def _children() -> dict:
    """What the task's waited-for child processes used: memray cannot see a program's memory."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpu": usage.ru_utime + usage.ru_stime, "faults": usage.ru_minflt, "maxrss": usage.ru_maxrss * 1024}


@signals.task_prerun.connect
def _start(task_id=None, task=None, **_):
    if _active or not chosen(NAMES, getattr(task, "name", None)):
        return  # one window at a time: a threads pool's second task is not profiled
    if not _child:  # the solo pool runs tasks in the main process, which no worker_process_init reaches
        _start_child(os.environ[DIR_ENV])
    window = next(_windows)
    emit("profile_start", task_id=task_id, path=_child["path"], window=window, children=_children())
    began = time.perf_counter()
    _oomlab_task_window_starts()
    _active.update(task_id=task_id, window=window, mark_s=time.perf_counter() - began)


@signals.task_postrun.connect
def _stop(task_id=None, **_):
    if not _active or _active["task_id"] != task_id:
        return
    began = time.perf_counter()
    _oomlab_task_window_ends()
    mark_s = _active["mark_s"] + time.perf_counter() - began
    emit(
        "profile_end",
        task_id=task_id,
        path=_child["path"],
        window=_active["window"],
        overhead_s=mark_s,
        children=_children(),
    )
    _active.clear()


def _noop() -> list:
    return [bytes(64) for _ in range(1000)]  # a thousand small allocations: what a tiny task does


def _peak_growth(began_rss: int | None) -> int | None:
    peak = procfs.status_fields("self", ("VmHWM",)).get("VmHWM")
    return peak - began_rss if peak is not None and began_rss is not None else None


def _timed_noops(marked: bool) -> tuple[list[float], list[int | None]]:
    """A no-op task body CALIBRATION_RUNS times: seconds and VmHWM growth of each. `marked`: with the
    two marks a chosen task pays (made from here, not from the window functions, so no reader takes
    them for a task's window)."""
    times, growth = [], []
    for _ in range(CALIBRATION_RUNS):
        procfs.reset_peak("self")
        rss = procfs.rss_bytes("self")
        began = time.perf_counter()
        if marked:
            bytearray(START_MARK)
        _noop()
        if marked:
            bytearray(END_MARK)
        times.append(time.perf_counter() - began)
        growth.append(_peak_growth(rss))
    return times, growth


def _begin(path: str) -> tuple[float, int | None]:
    """This child's tracker started: (seconds it took, the VmHWM growth it caused)."""
    procfs.reset_peak("self")
    rss = procfs.rss_bytes("self")
    began = time.perf_counter()
    tracker = _tracker(path)
    # started from a thread of its own: memray drops from every stack of the thread that starts it
    # the frames that thread had then (its caller's), and this one is deep in billiard's start-up,
    # on the chain the tasks then run from; a short-lived thread's frames are in no task's stack
    starter = threading.Thread(target=tracker.__enter__, name="oomlab-memray-start")
    starter.start()
    starter.join()
    took = time.perf_counter() - began
    setup = _peak_growth(rss)
    _child.update(tracker=tracker, path=path, start_s=took, setup=setup)
    return took, setup


def _start_child(directory: str) -> str:
    path = os.path.join(directory, f"child.{os.getpid()}.bin")
    start_s, setup = _begin(path)
    emit("profile_child", path=path, native=NATIVE, start_s=start_s, setup_peak_growth=setup)
    return path


@signals.worker_process_init.connect
def _on_child_init(**_):
    """The child's tracker starts before any task, so its one-off set-up (unwinding tables and
    buffers) is in no task's exact peak. The first child of a worker also measures the per-task
    cost: a no-op body bare, then tracked with a window's two marks."""
    directory = os.environ.get(DIR_ENV)
    if not directory:
        return
    try:  # the first pool child measures, once per worker
        os.close(os.open(os.path.join(directory, ".calibrated"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        _start_child(directory)
        return
    bare, bare_growth = _timed_noops(marked=False)
    _start_child(directory)
    start_s, setup = _child["start_s"], _child["setup"]
    tracked, tracked_growth = _timed_noops(marked=True)
    emit(
        "profile_cost",
        runs=CALIBRATION_RUNS,
        bare_s=bare,
        tracked_s=tracked,
        bare_peak_growth=bare_growth,
        tracked_peak_growth=tracked_growth,
        setup_peak_growth=setup,
        start_s=start_s,
    )


@signals.worker_process_shutdown.connect
def _on_child_shutdown(**_):
    """The capture's header gets its totals (a SIGKILLed child's capture is read without them)."""
    tracker = _child.pop("tracker", None)
    if tracker is not None:
        tracker.__exit__(None, None, None)
