"""The same size in three kinds of memory: a mapped file (clean page cache, which the kernel
reclaims before it kills), shmem (a memfd: tmpfs pages, unreclaimable without swap) and anonymous
memory. Near the limit the file-mapping task survives; the other two are OOM-killed."""

from __future__ import annotations

import mmap
import os

from oomlab import Param, Plan, RunContext, TaskCall, Variant
from oomlab.scenarios._common import MIB, cached_input, scenario_app, touched_bytes

description = "a mapped file near the limit survives; the same size in shmem or anonymous memory is OOM-killed"
app = scenario_app("memory_kinds")
PARAMS = [Param("mib", 224, "MiB each task maps, writes to shmem or allocates")]
DEFAULTS = {"memory": "256MiB", "concurrency": 1, "tasks": 1}
VARIANTS = [
    Variant("file", "the task maps a file and reads every page (page cache, reclaimable)"),
    Variant("shmem", "the task writes into a memfd (shmem, not reclaimable without swap)"),
    Variant("anon", "the task allocates and touches anonymous memory"),
]


@app.task(name="memory_kinds.map_file")
def map_file(path: str) -> int:
    """Read every page of a mapped file; its pages are dropped from the cache first, so they are
    charged to this task's memory cgroup as it reads them."""
    with open(path, "rb") as handle:
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return sum(mapped[offset] for offset in range(0, len(mapped), mmap.PAGESIZE))


@app.task(name="memory_kinds.shmem")
def shmem(mib: float) -> int:
    """Fill `mib` MiB of a mapped memfd (tmpfs, as multiprocessing.shared_memory and /dev/shm are):
    shared memory the kernel cannot reclaim without swap, resident in this process as RssShmem.
    Closing it frees it, so a kill leaves nothing behind."""
    size = int(mib * MIB)
    fd = os.memfd_create("oomlab-shmem")
    try:
        os.ftruncate(fd, size)
        with mmap.mmap(fd, size) as shared:
            for offset in range(0, size, MIB):
                shared[offset : offset + MIB] = b"\x01" * min(MIB, size - offset)
            return size
    finally:
        os.close(fd)


@app.task(name="memory_kinds.anon")
def anon(mib: float) -> int:
    return len(touched_bytes(mib))


def _write_file(mib: int):
    def make(path: str) -> None:
        with open(path, "wb") as handle:
            chunk = os.urandom(MIB)
            for _ in range(mib):
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())  # clean pages: the task can drop them from the cache and read them back

    return make


def plan(ctx: RunContext) -> Plan:
    mib = int(ctx.params["mib"])
    if ctx.variant == "file":
        path = cached_input(ctx.input_path(f"memory-kinds-{mib}MiB.bin"), _write_file(mib))
        call = TaskCall(map_file.name, (path,), label=f"map {mib} MiB file")
    elif ctx.variant == "shmem":
        call = TaskCall(shmem.name, (mib,), label=f"shmem {mib} MiB")
    else:
        call = TaskCall(anon.name, (mib,), label=f"anon {mib} MiB")
    return Plan([call] * (ctx.tasks or 1), timeout=60.0)
