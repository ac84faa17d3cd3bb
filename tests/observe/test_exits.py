"""ExitWatcher: a process's exit through its pidfd, or through /proc when no pidfd could be opened
(EMFILE), where a zombie (exited, not yet reaped) and a pid taken by another process are exits too."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time

from oomlab.observe.detectors.exits import ExitWatcher


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def _zombie(child: subprocess.Popen) -> None:
    """Killed and left unreaped: its /proc entry stays, in state Z."""
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{child.pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                return
        time.sleep(0.01)
    raise AssertionError("never a zombie")


def test_a_zombie_has_exited_through_its_pidfd():
    child = _sleeper()
    watcher = ExitWatcher()
    try:
        assert watcher.watch(child.pid) and not watcher.polled
        assert not watcher.has_exited(child.pid)
        _zombie(child)
        assert watcher.has_exited(child.pid)
    finally:
        child.kill()
        child.wait()
        watcher.close()


def test_a_zombie_has_exited_when_watched_without_a_pidfd():
    """Out of fds (RLIMIT_NOFILE at the lowest free fd number), the process is watched through /proc."""
    child = _sleeper()
    watcher = ExitWatcher()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        lowest_free = os.open(os.devnull, os.O_RDONLY)  # the number the pidfd would get
        os.close(lowest_free)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
        try:
            assert watcher.watch(child.pid)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert watcher.polled and watcher.no_pidfd
        assert not watcher.has_exited(child.pid)
        _zombie(child)
        assert watcher.has_exited(child.pid)  # its /proc entry is still there
        assert watcher.gone() == [child.pid]
    finally:
        child.kill()
        child.wait()
        watcher.close()
