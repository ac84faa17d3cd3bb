"""Runs inside the worker: one JSON line per event, appended with a single write(2).

Each record is in the kernel the moment the write returns, so it survives the writer being
SIGKILLed a microsecond later. The per-task peak is exact: VmHWM is reset at task_prerun and read
at task_postrun (Linux 4.0+ clear_refs). Imports only the standard library and Celery's signals.
"""

from __future__ import annotations

import os
import resource
import tracemalloc

from celery import signals
from oomlab.probe import procfs
from oomlab.probe.channel import emit
from oomlab.probe.events import CHILD_INIT, CHILD_SHUTDOWN, POSTRUN, PRERUN, SENT, WORKER_READY
from oomlab.probe.profile_choice import NAMES_ENV
from oomlab.probe.task_tree import TaskTree, process_kinds
from oomlab.probe.url_mask import safe_url

TRACE = os.environ.get("OOMLAB_TRACEMALLOC") == "1"


_own = procfs.OwnFiles()  # this process's /proc files, kept open
_tree = TaskTree()  # this pool child's leaf memory cgroup (made at child start)


class _SharedProcess:
    """Tasks in flight in this process. In the solo, threads, gevent and eventlet pools tasks share
    the worker's main process: VmHWM is reset only when no other task runs in it (a reset would wipe
    the other's peak), and every reading says which tasks it may include."""

    def __init__(self):
        self.in_flight: set[str] = set()

    def start(self, task_id: str | None) -> tuple[bool, list[str]]:
        """(reset VmHWM now?, the other tasks running in this process)."""
        others = sorted(self.in_flight)
        self.in_flight.add(task_id or "?")
        return not others, others

    def finish(self, task_id: str | None) -> list[str]:
        self.in_flight.discard(task_id or "?")
        return sorted(self.in_flight)


_shared = _SharedProcess()
_main_pid: int | None = None  # the worker's main process: tasks running here share it


def _rss() -> int | None:
    return _own.mine().rss()


@signals.worker_init.connect
def _on_worker_init(**_):
    global _main_pid
    _main_pid = os.getpid()
    # The app's and its task modules' receivers are connected by now (Celery imports them before
    # worker_init) and the pool forks later: child_init moves behind them, so it says a child
    # finished its init (a model its worker_process_init loads included), not that it began it.
    signals.worker_process_init.disconnect(_on_child_init)
    signals.worker_process_init.connect(_on_child_init)
    emit("worker_init", rss=_rss())


@signals.worker_ready.connect
def _on_worker_ready(sender=None, **_):
    app = getattr(sender, "app", None)
    names = sorted(name for name in app.tasks if not name.startswith("celery.")) if app is not None else None
    emit(WORKER_READY, rss=_rss(), registered=names)  # the run checks the names it sends against these


@signals.after_task_publish.connect
def _on_sent(headers=None, **_):
    """A task sent from inside the worker: the run follows it until it ends, linked to its sender."""
    headers = headers or {}
    if headers.get("id"):
        emit(
            SENT,
            task_id=headers["id"],
            name=headers.get("task"),
            parent_id=headers.get("parent_id"),
            root_id=headers.get("root_id"),
            group_id=headers.get("group"),
        )


CHILD_OOM_SCORE_ADJ = "OOMLAB_CHILD_OOM_SCORE_ADJ"


@signals.worker_process_init.connect
def _prefer_this_child(**_):
    """With OOMLAB_CHILD_OOM_SCORE_ADJ=N (1 to 1000; unset in a run, as in production), a pool child
    raises its oom_score_adj to N first thing (raising needs no privilege), so the kernel takes a
    child rather than the main process when their sizes are near. oomlab's own tests of child kills
    set it: right after one kill the kernel sometimes took the main process (a fresh child holds less),
    a real outcome that made those tests fail by chance."""
    wanted = os.environ.get(CHILD_OOM_SCORE_ADJ, "")
    if wanted.isdigit() and 0 < int(wanted) <= 1000:
        try:  # procfs: the process's own file, no directory anyone else can write
            fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.write(fd, wanted.encode())
            finally:
                os.close(fd)
        except OSError:
            pass  # a kernel without it: the kernel chooses as it would


@signals.worker_process_init.connect
def _on_child_init(**_):
    """The child is ready: every worker_process_init receiver has run (_on_worker_init)."""
    pss_uss = procfs.pss_uss_bytes("self")  # a child's private pages right after the fork, for capacity plans
    emit(
        CHILD_INIT,
        rss=_rss(),
        ppid=os.getppid(),
        leaf=_tree.make(),
        pss=pss_uss[0] if pss_uss else None,
        uss=pss_uss[1] if pss_uss else None,
        oom_score_adj=procfs.oom_score_adj(),
    )


@signals.worker_process_shutdown.connect
def _on_child_shutdown(exitcode=None, **_):
    emit(CHILD_SHUTDOWN, exitcode=exitcode, rss=_rss())


@signals.task_prerun.connect
def _on_prerun(task_id=None, task=None, **_):
    if TRACE:
        if not tracemalloc.is_tracing():
            tracemalloc.start()
        tracemalloc.reset_peak()
    emit(PRERUN, task_id=task_id, name=getattr(task, "name", None), **_start_peaks(task_id), **_delivery(task))


def _start_peaks(task_id: str | None) -> dict:
    """Reset the process's VmHWM (unless another task shares the process) and the leaf's peak."""
    shared = os.getpid() == _main_pid
    alone, others = _shared.start(task_id) if shared else (True, [])
    own = _own.mine()
    hwm_before = own.status(("VmHWM",)).get("VmHWM") if shared else None
    reset = own.reset_peak() if alone else False
    return {
        "start_rss": _rss(),
        "peak_reset": reset,
        "shared_process": shared,
        "in_flight": others,
        "hwm_before": hwm_before,
        **_tree.reset(),
    }


def _delivery(task) -> dict:
    """How this message reached the worker: the broker's redelivered flag, RabbitMQ's
    x-delivery-count (quorum queues) and Celery's retry count, as evidence for the delivery lab."""
    request = getattr(task, "request", None)
    if request is None:
        return {}
    info = getattr(request, "delivery_info", None) or {}
    return {
        "redelivered": info.get("redelivered"),
        "delivery_count": vars(request).get("x-delivery-count"),
        "retries": getattr(request, "retries", None),
        # Celery's own links: who sent it, the workflow's first task, its group or chord
        "parent_id": getattr(request, "parent_id", None),
        "root_id": getattr(request, "root_id", None),
        "group_id": getattr(request, "group", None),
    }


@signals.task_postrun.connect
def _on_postrun(task_id=None, task=None, state=None, retval=None, **_):
    failed = {"exception": _exception(retval)} if state == "FAILURE" and isinstance(retval, BaseException) else {}
    emit(POSTRUN, task_id=task_id, name=getattr(task, "name", None), state=state, **failed, **_end_peaks(task_id))


EXCEPTION_CHARS = 300  # a failure's first line, kept short: one probe line stays one atomic write


def _exception(error: BaseException) -> str:
    """`Type: message` as the result backend's traceback ends, the message's first line, shortened."""
    message = str(error).splitlines()[0] if str(error) else ""
    # a message may quote a URL with its password (a database's): masked here, before any file holds it
    return safe_url(f"{type(error).__name__}: {message}")[:EXCEPTION_CHARS] if message else type(error).__name__


def _end_peaks(task_id: str | None) -> dict:
    """The process's VmHWM and RSS by kind, and the leaf's (the task's whole tree) peak."""
    raw = _own.mine().status_raw()
    status = procfs.parse_status_fields(raw, ("VmHWM", "VmRSS"))
    traced = tracemalloc.get_traced_memory()[1] if TRACE and tracemalloc.is_tracing() else None
    others = _shared.finish(task_id) if os.getpid() == _main_pid else []
    return {
        "peak_rss": status.get("VmHWM"),
        "end_rss": status.get("VmRSS"),
        "kinds_end": process_kinds(raw),
        "in_flight": others,
        "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "traced_peak": traced,
        **_tree.read(status.get("VmHWM")),
    }


if os.environ.get(NAMES_ENV):  # --profile: memray per chosen task, inside the probe's span
    from oomlab.probe import profiler as worker  # noqa: F401  (connected after the handlers above)
