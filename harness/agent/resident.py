"""The agent's own code kept in memory while it shares the worker's memory group (a container with the
agent as its entrypoint): at the group's limit the kernel reclaims every page it can before it kills,
and file pages (the interpreter's and libc's code) are all it can take. The agent's next wake-up
then faults its code back in, which needs a charge the full group cannot give, and waits until the
kill has freed the victim's memory: the kill is seen 5 to 100 ms late (measured in a container),
when the agent's whole point there is to see it within a few.

So the pages of code and read-only data of the agent's that are in memory by then (mincore) are
locked (mlock): the interpreter's first (its executable, and libpython where it is a shared
library), then libc's, the loader's and the rest, as far as RLIMIT_MEMLOCK allows (8 MiB in Docker's
default container). Unprivileged, mincore shows only the pages the agent itself has mapped, its
path so far; pages it never touched stay unlocked. The heap needs nothing: without swap anonymous
memory is never reclaimed. Locked pages are the group's too: the worker has up to that much less to
reclaim before a kill."""

from __future__ import annotations

import ctypes
import mmap
import os
import resource
from dataclasses import dataclass

from oomlab.probe import procfs

_PAGE = mmap.PAGESIZE
_UNLIMITED_BUDGET = 64 << 20  # with CAP_IPC_LOCK or no limit: still only what was touched, at most this
_FIRST = ("libpython", "libc.so", "ld-linux", "libm.so")  # after the interpreter: what its loop runs through


@dataclass
class Pinned:
    locked_bytes: int
    budget_bytes: int
    error: str | None = None  # why nothing could be locked


@dataclass(frozen=True)
class _Mapping:
    start: int
    end: int
    path: str


def pin_resident_code() -> Pinned:
    """Locks what of the process's code and read-only file mappings is resident now, within its
    RLIMIT_MEMLOCK; says why when none could be."""
    budget = _budget()
    if budget <= 0:
        return Pinned(0, 0, "RLIMIT_MEMLOCK allows no locked memory")
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError as exc:
        return Pinned(0, budget, f"libc is not loadable: {exc}")
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.mlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    locked = 0
    for mapping in _in_order(_read_only_files()):
        for start, length in _resident_runs(libc, mapping):
            length = min(length, budget - locked)
            if length <= 0:
                return Pinned(locked, budget)
            if libc.mlock(start, length) != 0:
                return Pinned(locked, budget, None if locked else os.strerror(ctypes.get_errno()))
            locked += length
    return Pinned(locked, budget)


def _budget() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if soft == resource.RLIM_INFINITY:
        return _UNLIMITED_BUDGET
    locked_now = procfs.status_fields("self", ("VmLck",)).get("VmLck", 0)
    return min(_UNLIMITED_BUDGET, soft - locked_now - _PAGE)  # a page to spare for whatever else locks


def _read_only_files() -> list[_Mapping]:
    """The process's file mappings that it cannot write: code and read-only data."""
    found = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) < 6 or "w" in fields[1] or not fields[5].startswith("/"):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            found.append(_Mapping(start, end, fields[5].rstrip("\n")))
    return found


def _in_order(mappings: list[_Mapping]) -> list[_Mapping]:
    """The interpreter's first, then libpython's, libc's and the loader's, then the rest as mapped."""
    exe = os.path.realpath("/proc/self/exe")

    def rank(mapping: _Mapping) -> int:
        if mapping.path == exe:
            return 0
        name = os.path.basename(mapping.path)
        return next((i + 1 for i, prefix in enumerate(_FIRST) if name.startswith(prefix)), len(_FIRST) + 1)

    return sorted(mappings, key=rank)


def _resident_runs(libc: ctypes.CDLL, mapping: _Mapping) -> list[tuple[int, int]]:
    """(start, length) of each run of the mapping's pages that are in memory now."""
    pages = (mapping.end - mapping.start) // _PAGE
    vec = ctypes.create_string_buffer(pages)
    if libc.mincore(mapping.start, mapping.end - mapping.start, vec) != 0:
        return []
    runs, first = [], None
    for i, byte in enumerate(vec.raw):
        if byte & 1 and first is None:
            first = i
        elif not byte & 1 and first is not None:
            runs.append((mapping.start + first * _PAGE, (i - first) * _PAGE))
            first = None
    if first is not None:
        runs.append((mapping.start + first * _PAGE, (pages - first) * _PAGE))
    return runs
