"""Runs in the pool child: a memray Tracker from task_prerun to task_postrun for each chosen task,
one capture file per execution, and a measurement of what that costs.

Imported by the probe after its own handlers are connected, so Celery calls the probe first at
prerun (VmHWM reset) and first at postrun (VmHWM read): the tracker runs inside the probe's span.
"""

from __future__ import annotations

import itertools
import os
import resource
import time

from celery import signals
from oomlab.probe import procfs
from oomlab.probe.channel import emit
from oomlab.probe.profile_choice import DIR_ENV, NAMES_ENV, chosen, parse_names

NAMES = parse_names(os.environ.get(NAMES_ENV))
CALIBRATION_RUNS = 10  # no-op executions with and without a tracker, in one pool child
_active: dict = {}  # the running tracker, its path and how long starting it took
_sequence = itertools.count()


def _tracker(path: str):
    import memray

    return memray.Tracker(
        # buffered=False: records go through a shared mmap of the file, so a SIGKILL loses none of
        # them; no compression at exit, which would hold the pool child after every task
        destination=memray.FileDestination(path, overwrite=True, compress_on_exit=False, buffered=False),
        native_traces=True,  # C extensions (numpy, PIL) are where much of the memory is
        follow_fork=True,  # a task's forked Python children write <path>.<pid>
    )


def _children() -> dict:
    """What the task's waited-for child processes used: memray cannot see a program's memory."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpu": usage.ru_utime + usage.ru_stime, "faults": usage.ru_minflt, "maxrss": usage.ru_maxrss * 1024}


@signals.task_prerun.connect
def _start(task_id=None, task=None, **_):
    if _active or not chosen(NAMES, getattr(task, "name", None)):
        return  # one tracker per process: a threads pool's second task is not tracked
    path = os.path.join(os.environ[DIR_ENV], f"{task_id}.{os.getpid()}.{next(_sequence)}.bin")
    began = time.perf_counter()
    tracker = _tracker(path)
    tracker.__enter__()
    _active.update(tracker=tracker, path=path, task_id=task_id, enter_s=time.perf_counter() - began)
    emit("profile_start", task_id=task_id, path=path, children=_children())


@signals.task_postrun.connect
def _stop(task_id=None, **_):
    if not _active or _active["task_id"] != task_id:
        return
    began = time.perf_counter()
    _active["tracker"].__exit__(None, None, None)
    exit_s = time.perf_counter() - began
    emit(
        "profile_end",
        task_id=task_id,
        path=_active["path"],
        overhead_s=_active["enter_s"] + exit_s,
        children=_children(),
    )
    _active.clear()


def _noop() -> list:
    return [bytes(64) for _ in range(1000)]  # a thousand small allocations: what a tiny task does


def _peak_growth(began_rss: int | None) -> int | None:
    peak = procfs.status_fields("self", ("VmHWM",)).get("VmHWM")
    return peak - began_rss if peak is not None and began_rss is not None else None


def _calibrate(directory: str) -> None:
    """A no-op task body run CALIBRATION_RUNS times bare and CALIBRATION_RUNS times inside a tracker,
    in this pool child: the time and the VmHWM growth printed as memray's per-task cost are these
    measurements (memray's own memory is inside a profiled task's exact peak)."""
    path = _scratch(directory)
    bare, tracked, bare_growth, tracked_growth = [], [], [], []
    for _ in range(CALIBRATION_RUNS):
        procfs.reset_peak("self")
        rss = procfs.rss_bytes("self")
        began = time.perf_counter()
        _noop()
        bare.append(time.perf_counter() - began)
        bare_growth.append(_peak_growth(rss))
        procfs.reset_peak("self")
        rss = procfs.rss_bytes("self")
        began = time.perf_counter()
        with _tracker(path):
            _noop()
        tracked.append(time.perf_counter() - began)
        tracked_growth.append(_peak_growth(rss))
    _remove(path)
    emit(
        "profile_cost",
        runs=CALIBRATION_RUNS,
        bare_s=bare,
        tracked_s=tracked,
        bare_peak_growth=bare_growth,
        tracked_peak_growth=tracked_growth,
    )


def _scratch(directory: str) -> str:
    return os.path.join(directory, f".scratch.{os.getpid()}.bin")


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


@signals.worker_process_init.connect
def _on_child_init(**_):
    """memray's one-off set-up (its unwinding tables and buffers, about 12 MiB here) is paid as each
    pool child starts, outside any task, so no task's exact peak carries it; the first child also
    measures the per-task cost."""
    directory = os.environ.get(DIR_ENV)
    if not directory:
        return
    try:  # the first pool child measures, once per worker
        os.close(os.open(os.path.join(directory, ".calibrated"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        procfs.reset_peak("self")
        rss = procfs.rss_bytes("self")
        with _tracker(_scratch(directory)):
            pass
        _remove(_scratch(directory))
        emit("profile_warmup", peak_growth=_peak_growth(rss))
        return
    _calibrate(directory)
