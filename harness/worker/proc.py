"""Starting and stopping the processes a run owns (broker, worker) so none outlives it."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from oomlab.trust import open_in_dir

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(
    argv: Sequence[str],
    *,
    log_path: str,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    join_cgroup: str | None = None,
) -> subprocess.Popen:
    """Start `argv` in its own session, killed by the kernel if oomlab dies, optionally inside a
    cgroup (joined between fork and exec, so not a single byte is allocated outside the limit)."""

    def before_exec() -> None:
        die_with_parent()
        if join_cgroup:
            fd = os.open(join_cgroup, os.O_WRONLY)
            try:
                os.write(fd, b"0")  # "0" means the writing process itself
            finally:
                os.close(fd)

    log = open_in_dir(log_path, "ab")  # a run directory's worker.log / redis.log, never through a symlink
    try:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=before_exec,
        )
    finally:
        log.close()


class Stoppable(Protocol):
    """What `stop` needs of a process: subprocess.Popen's surface (a container worker has it too)."""

    def poll(self) -> int | None: ...
    def send_signal(self, sig: int) -> None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def kill(self) -> None: ...


def stop(process: Stoppable, grace: float, on_timeout: Callable[[], object] | None = None) -> int | None:
    """SIGTERM, wait `grace` seconds, then SIGKILL (or `on_timeout`, e.g. killing a whole cgroup)."""
    if process.poll() is None:
        try:
            process.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            if on_timeout:
                on_timeout()
            else:
                process.kill()
    try:
        return process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
