"""`measure_peak(fn, *args, **kwargs)`: one call's exact peak RSS, no broker and no worker.

The call runs in a forked child, so its memory (and whatever it leaks) never touches the test
process, and the child's VmHWM, reset just before the call (clear_refs), is the call's exact peak:
the same measure oomlab takes around every task in a worker. The return value and any exception
come back pickled; an exception is raised again in the caller with the child's traceback text."""

from __future__ import annotations

import ctypes
import os
import pickle
import reprlib
import resource
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from oomlab.config.sizes import format_size
from oomlab.probe import procfs


@dataclass(repr=False)
class PeakMeasurement:
    peak_rss_bytes: int  # VmHWM after the call, reset just before it: exact for the calling process
    start_rss_bytes: int  # RSS just before the call (the forked child's, pages shared with the caller included)
    value: Any  # what the call returned
    # False on kernels without clear_refs (then: the child's lifetime peak), and when the call started
    # processes: their memory is not in peak_rss_bytes (`note` says what is known of it)
    peak_is_exact: bool = True
    children_peak_rss_bytes: int | None = None  # the largest process the call started and waited for (ru_maxrss)
    note: str | None = None  # why the peak is not exact

    @property
    def peak_above_start_bytes(self) -> int:
        return self.peak_rss_bytes - self.start_rss_bytes

    def __str__(self) -> str:
        return (
            f"peak {format_size(self.peak_rss_bytes)} ({format_size(self.peak_above_start_bytes)} above "
            f"the {format_size(self.start_rss_bytes)} at the start)" + (f"; {self.note}" if self.note else "")
        )

    def __repr__(self) -> str:
        """Short: the figures and the value's type and size, never the whole value (a 1 MiB bytearray
        would be a 4 MB repr)."""
        children = (
            f", children_peak_rss_bytes={self.children_peak_rss_bytes}"
            if self.children_peak_rss_bytes is not None
            else ""
        )
        return (
            f"PeakMeasurement(peak_rss_bytes={self.peak_rss_bytes}, start_rss_bytes={self.start_rss_bytes}, "
            f"peak_is_exact={self.peak_is_exact}{children}, value={_short(self.value)})"
        )


def _short(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        return f"<{type(value).__name__} of {len(value)}>"
    return reprlib.repr(value)


class MeasuredCallFailed(Exception):
    """The measured call raised something that cannot be pickled back; its text is kept."""


class MeasuredCallKilled(Exception):
    """The child running the call died of a signal (e.g. an OOM kill under a memory limit)."""


def measure_peak(fn: Callable, *args, **kwargs) -> PeakMeasurement:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: measure, report, and leave without running the caller's cleanup
        os.close(read_fd)
        status = 0
        try:
            payload = _call_and_measure(fn, args, kwargs)
        except BaseException:
            payload = ("error", None, None, None, _portable_exception(), None)
        try:
            with os.fdopen(write_fd, "wb") as pipe:
                pickle.dump(payload, pipe)
        except BaseException:
            status = 1
        os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    _, wait_status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(wait_status):
        name = signal.Signals(os.WTERMSIG(wait_status)).name
        raise MeasuredCallKilled(f"the measured call was killed by {name} (under a memory limit, an OOM kill)")
    kind, peak, start, exact, value, children = pickle.loads(data)
    if kind == "error":
        raise value
    measured = PeakMeasurement(peak_rss_bytes=peak, start_rss_bytes=start, value=value, peak_is_exact=exact)
    if not exact:
        measured.note = "this kernel cannot reset the peak (clear_refs): the child's lifetime peak"
    if children is not None:
        waited, left, largest = children
        measured.peak_is_exact = False
        measured.children_peak_rss_bytes = largest if waited else None
        measured.note = _children_note(waited, left, largest)
    return measured


def _children_note(waited: bool, left: int, largest: int) -> str:
    said = ["the call started processes, whose memory is not in peak_rss_bytes"]
    if waited:
        said.append(f"the largest it waited for peaked at {format_size(largest)} RSS (RUSAGE_CHILDREN)")
    if left:
        said.append(f"{left} it did not wait for were still running or unreaped when it returned: not measured")
    return "; ".join(said)


def _release_inherited_free_memory() -> None:
    """The caller's heap may hold freed pages that are still resident; the child inherits them,
    and an allocation that reuses them raises no RSS (it is counted already), so the call would
    look free. glibc's malloc_trim(0) hands every free page back first (madvise), so each page the
    call touches is a new one in the measure."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim this way
        pass


def _call_and_measure(fn: Callable, args: tuple, kwargs: dict) -> tuple:
    _release_inherited_free_memory()
    exact = procfs.reset_peak("self")
    start = procfs.rss_bytes("self") or 0
    value = fn(*args, **kwargs)
    peak = procfs.status_fields("self", ("VmHWM",)).get("VmHWM") or 0
    try:
        pickle.dumps(value)
    except Exception:  # an unpicklable result is still measured; it is described instead
        value = repr(value)
    return ("ok", max(peak, start), start, exact, value, _children())


def _children() -> tuple[bool, int, int] | None:
    """What the call's own processes (this forked child had none before it) left to measure: whether
    it waited for any (RUSAGE_CHILDREN then holds the largest one's peak RSS: not their sum, and not
    at the same time as the call's own), and how many are still its children now. None: it started none."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    waited = usage.ru_maxrss > 0 or usage.ru_utime + usage.ru_stime > 0
    left = _child_count()
    if not waited and not left:
        return None
    return waited, left, usage.ru_maxrss * 1024


def _child_count() -> int:
    me = str(os.getpid())
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    stat = handle.read()
            except OSError:
                continue
            if stat[stat.rfind(b")") + 2 :].split()[1] == me.encode():
                count += 1
    return count


def _portable_exception() -> BaseException:
    import sys

    error = sys.exc_info()[1]
    assert error is not None, "called from an except block"
    text = "".join(traceback.format_exception(error))
    try:
        pickle.loads(pickle.dumps(error))
        error.add_note(f"raised in the measured child process:\n{text}")
        return error
    except Exception:
        return MeasuredCallFailed(text)
