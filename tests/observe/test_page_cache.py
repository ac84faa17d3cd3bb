"""The worker's files for oomlab (probe records, its log) are charged to the worker's memory cgroup as
page cache; once read, oomlab drops them, so a long run does not fill the group with its own cache."""

from __future__ import annotations

import os
import sys

import pytest
from oomlab.observe.page_cache import ReadCache
from oomlab.probe.task_tree import memory_kinds
from oomlab.worker import proc
from oomlab.worker.limits import open_cgroup_backend

pytestmark = pytest.mark.integration
MIB = 2**20
WRITER = (
    "import os,sys\nfd=os.open(sys.argv[1],os.O_WRONLY|os.O_CREAT)\nos.write(fd,b'x'*int(sys.argv[2]))\nos.fsync(fd)"
)


def group_file_bytes(group) -> int:
    with open(group.file("memory.stat")) as handle:
        return (memory_kinds(handle.read(), group.version) or {}).get("file", 0)


def test_a_file_the_worker_wrote_leaves_the_groups_cache_once_read(tmp_path):
    path = str(tmp_path / "probe.jsonl")
    group = open_cgroup_backend(f"page-cache-test-{os.getpid()}")
    group.create(256 * MIB, "process")
    group.prepare_leaves()
    try:
        writer = proc.spawn(
            [sys.executable, "-c", WRITER, path, str(12 * MIB)],
            log_path=str(tmp_path / "writer.log"),
            join_cgroup=group.join_file,
        )
        assert writer.wait(timeout=60) == 0
        before = group_file_bytes(group)
        assert before >= 12 * MIB  # the writer's cache stays charged to its group after it exits
        cache = ReadCache(step_bytes=MIB)
        fd = os.open(path, os.O_RDONLY)
        try:
            assert not cache.release(fd, MIB // 2)  # less than a step read: nothing done yet
            assert cache.release(fd, 12 * MIB)
        finally:
            os.close(fd)
        assert group_file_bytes(group) < before - 11 * MIB
    finally:
        group.remove()
