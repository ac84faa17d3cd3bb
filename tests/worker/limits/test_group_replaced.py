"""A group made anew under the same path (runc does this at every container restart): the monitor
follows it, so a kill in the new group is noticed and counted on from the earlier group's kills."""

from __future__ import annotations

import os
import sys
import time
import uuid

import pytest
from oomlab.observe.monitor import Monitor
from oomlab.worker import proc
from oomlab.worker.limits import open_cgroup_backend

from tests.conftest import TIME_SCALE

pytestmark = pytest.mark.integration
MIB = 2**20


def _oom_in(group, tmp_path) -> None:
    """A process that touches 3× the group's limit: the kernel kills it."""
    hog = proc.spawn(
        [sys.executable, "-c", "b = bytearray(192 << 20); b[::4096] = b'x' * len(b[::4096])"],
        log_path=str(tmp_path / "hog.log"),
        join_cgroup=group.procs_file,
    )
    assert hog.wait(timeout=60 * TIME_SCALE) == -9


def _wait_for(monitor: Monitor, events: int) -> list:
    deadline = time.monotonic() + 10 * TIME_SCALE
    while len(monitor.snapshot().oom_events) < events and time.monotonic() < deadline:
        time.sleep(0.02)
    return monitor.snapshot().oom_events


def test_a_kill_in_a_group_made_anew_is_counted_on(tmp_path):
    group = open_cgroup_backend(f"replaced-{uuid.uuid4().hex[:8]}")
    group.create(64 * MIB, "process")
    probe = tmp_path / "probe.jsonl"
    probe.touch()
    monitor = Monitor(group, str(probe), emulate_group_kill=False)
    monitor.start()
    try:
        _oom_in(group, tmp_path)
        assert [count for _, count in _wait_for(monitor, 1)] == [1]
        os.rmdir(group.path)  # what runc does when the container stops, then again at its start
        group.create(64 * MIB, "process")
        _oom_in(group, tmp_path)
        events = _wait_for(monitor, 2)
        # without following the new group its counter (1 again) would never rise above the 1 seen
        assert [count for _, count in events] == [1, 2]
        assert len(monitor.snapshot().group_replaced) == 1
    finally:
        monitor.stop()
        group.remove()
