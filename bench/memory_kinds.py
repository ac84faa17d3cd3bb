"""The kinds of memory a task makes, each a plain function of its size in MiB that holds the memory
for HOLD seconds and returns. The fidelity benchmark runs each in a real worker (oomlab), under
every other tool, and bare in a fresh memory cgroup for the kernel's figure. No Celery here: a
bare run's process stays small, so what it forks copies little."""

from __future__ import annotations

import gc
import mmap
import os
import subprocess
import tempfile
import time
from collections.abc import Callable

MIB = 1 << 20
PAGE = mmap.PAGESIZE
HOLD = 0.05  # seconds each kind holds its memory: five 10 ms polls; the spike holds 1 ms
SPIKE_HOLD = 0.001


def _touch(view: mmap.mmap) -> None:
    """Write one byte in every page: resident without a second copy of the buffer."""
    for offset in range(0, len(view), PAGE):
        view[offset] = 1


def python_objects(mib: int) -> None:
    """Pure Python objects: small strings in a list (about 64 bytes each with its pointer)."""
    held = [str(index) for index in range(mib * MIB // 64)]
    time.sleep(HOLD)
    del held


def c_extension(mib: int) -> None:
    """A numpy array, written: memory a C extension allocates with malloc and touches."""
    import numpy

    held = numpy.ones(mib * MIB, dtype=numpy.uint8)
    time.sleep(HOLD)
    del held


def subprocess_program(mib: int) -> None:
    """A program run as a subprocess (the way ffmpeg is run): dd reads twice into an `mib` MiB buffer."""
    subprocess.run(
        ["dd", "if=/dev/zero", "of=/dev/null", f"bs={mib}M", "count=4"], check=True, stderr=subprocess.DEVNULL
    )


def _half(mib: int) -> int:
    block = b"\x01" * (mib * MIB)
    time.sleep(HOLD)
    return len(block)


def billiard_pool(mib: int) -> None:
    """A billiard pool of two processes inside the task (multiprocessing's own is refused on prefork),
    each allocating half. gc.freeze keeps the children from dirtying every inherited page."""
    import billiard

    gc.freeze()
    try:
        with billiard.Pool(2) as pool:
            pool.map(_half, [mib // 2, mib - mib // 2])
    finally:
        gc.unfreeze()


def forked_child(mib: int) -> None:
    """A forked child (the worker's grandchild) that allocates and exits."""
    pid = os.fork()
    if pid == 0:
        try:
            _half(mib)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def mapped_file(mib: int) -> None:
    """A file mapped shared and written: file-backed pages, in RSS and in the group's page cache."""
    with tempfile.TemporaryFile() as handle:
        handle.truncate(mib * MIB)
        with mmap.mmap(handle.fileno(), mib * MIB) as view:
            _touch(view)
            time.sleep(HOLD)


def shared_memory(mib: int) -> None:
    """POSIX shared memory: a file in /dev/shm (tmpfs, what shm_open and multiprocessing's
    shared_memory make), mapped and written: shmem pages. Not multiprocessing.shared_memory itself:
    its first use starts a resource-tracker process, whose ~8 MiB would be measured once per process."""
    path = os.path.join("/dev/shm", f"oomlab-bench-{os.getpid()}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.unlink(path)  # nothing left behind, even if killed: the mapping keeps the pages alive
        os.ftruncate(fd, mib * MIB)
        with mmap.mmap(fd, mib * MIB) as view:
            _touch(view)
            time.sleep(HOLD)
    finally:
        os.close(fd)


def untouched_malloc(mib: int) -> None:
    """Memory allocated and never written: the kernel gives it no page, allocation tracers count it."""
    import numpy

    held = numpy.empty(mib * MIB, dtype=numpy.uint8)
    time.sleep(HOLD)
    del held


def prefaulted_spike(mib: int) -> None:
    """A ~1 ms spike: MAP_POPULATE faults every page in one system call (no Python loop writing
    them), the mapping is held 1 ms and unmapped."""
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE
    with mmap.mmap(-1, mib * MIB, flags=flags):
        time.sleep(SPIKE_HOLD)


KINDS: dict[str, Callable[[int], None]] = {
    "python objects": python_objects,
    "C extension (numpy)": c_extension,
    "subprocess (dd)": subprocess_program,
    "billiard pool": billiard_pool,
    "forked grandchild": forked_child,
    "mapped file": mapped_file,
    "shmem (/dev/shm)": shared_memory,
    "malloc never touched": untouched_malloc,
    "1 ms spike (pre-faulted)": prefaulted_spike,
}


def import_all() -> None:
    """Import what the kinds use before measuring, so no kind's growth is an import."""
    from multiprocessing import shared_memory  # noqa: F401

    import billiard  # noqa: F401
    import numpy  # noqa: F401


def spike_lifetime(mib: int) -> float:
    """Seconds from before the spike's mapping to after its unmapping: how long it really lasts."""
    started = time.perf_counter()
    prefaulted_spike(mib)
    return time.perf_counter() - started
