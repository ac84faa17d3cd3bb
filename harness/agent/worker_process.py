"""The user's worker as the agent's child: its command unchanged, the probe loaded through Celery's
CELERY_LOADER, a datagram socket for the probe's events, and the signals Celery expects passed on
(TERM is a warm shutdown, QUIT a cold one, INT, HUP, USR1 and USR2 as Celery reads them).

The worker runs in a session of its own so that a terminal's Ctrl-C reaches it once, through the
agent, not twice. It is not tied to the agent's life: if the agent dies, the worker goes on."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Callable

from oomlab.probe.agent_events import LOADER, LOADER_ENV
from oomlab.probe.channel import FD_ENV, PATH_ENV
from oomlab.trust import check_trusted_dir, import_env

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
_SNDBUF = 4 << 20  # room for bursts of events while the agent's thread is busy


def probe_socket() -> tuple[socket.socket, socket.socket]:
    """(the agent's end, the worker's end): one datagram per event, whole or not at all."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for end in (ours, theirs):
        try:
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF if end is theirs else socket.SO_RCVBUF, _SNDBUF)
        except OSError:
            pass
    theirs.setblocking(False)  # shared with every pool child: a full socket drops, never blocks a task
    ours.shutdown(socket.SHUT_WR)
    return ours, theirs


def check_workdir() -> None:
    """The worker starts in the agent's working directory, and Celery imports from it first (its -A
    app, and the probe's loader, `oomlab...`, which the agent adds): refused (NoPermission, exit 3)
    when another user could plant an `oomlab/` there."""
    check_trusted_dir(os.getcwd(), "working directory the worker would start in")


def worker_env(theirs: socket.socket, extra_env: dict[str, str]) -> dict[str, str]:
    """The agent's environment, the probe's socket and loader, and PYTHONSAFEPATH=1: `python -m
    celery` puts no working directory first on sys.path (Celery's own -A import still looks there)."""
    env = dict(os.environ, **extra_env, **import_env())
    env[FD_ENV] = str(theirs.fileno())
    env.pop(PATH_ENV, None)
    env.setdefault(LOADER_ENV, LOADER)
    return env


def start(
    argv: list[str],
    theirs: socket.socket,
    extra_env: dict[str, str],
    join_cgroup: str | None,
    in_child: Callable[[], None] = lambda: None,
):
    """The worker; `in_child` runs in it between fork and exec (the lease handed over to it)."""
    env = worker_env(theirs, extra_env)

    def before_exec() -> None:
        in_child()
        if join_cgroup:
            fd = os.open(join_cgroup, os.O_WRONLY)
            try:
                os.write(fd, b"0")  # the worker is born in its group: not a byte outside the limit
            finally:
                os.close(fd)

    return subprocess.Popen(argv, env=env, pass_fds=(theirs.fileno(),), start_new_session=True, preexec_fn=before_exec)


def forward_signals(pid: int) -> None:
    def forward(signum, _frame) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in FORWARDED:
        signal.signal(signum, forward)


def wait(pid: int) -> int:
    """Reap until the worker exits (an agent that is a container's PID 1 also reaps orphans); its
    exit code, or 128 + the signal that ended it."""
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        if reaped == pid:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
