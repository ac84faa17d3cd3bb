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

from oomlab.agent.probe_inbox import stamp_senders
from oomlab.probe.agent_events import LOADER, LOADER_ENV
from oomlab.probe.channel import FD_ENV, PATH_ENV
from oomlab.trust import check_importable, check_trusted_dir, import_env

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
    stamp_senders(ours)  # the kernel names each datagram's sender (oomlab.agent.probe_inbox)
    theirs.setblocking(False)  # shared with every pool child: a full socket drops, never blocks a task
    ours.shutdown(socket.SHUT_WR)
    return ours, theirs


WORKDIR_ENV = "CELERY_WORKDIR"  # click's auto envvar for `celery --workdir` (Celery's main sets prefix CELERY)


def check_workdir(command: list[str]) -> None:
    """The worker starts in the agent's working directory, or in the one `celery --workdir DIR` (or
    CELERY_WORKDIR) changes to before anything is imported, and Celery imports from there first (its
    -A app, and the probe's loader, `oomlab...`, which the agent adds): each refused (NoPermission,
    exit 3) when another user could plant an `oomlab/` there."""
    folders = [check_trusted_dir(os.getcwd(), "working directory the worker would start in")]
    for workdir in celery_workdirs(command):
        folders.append(check_trusted_dir(workdir, "--workdir the worker would change to"))
    app = celery_app_name(command)
    if app is None:
        return
    for folder in folders:  # a trusted folder may still hold another user's package
        check_importable(folder, app, f"the worker's app {app}")


def celery_app_name(command: list[str]) -> str | None:
    """`celery -A NAME` / `--app NAME` / `--app=NAME` / `-ANAME`: what Celery imports first."""
    for i, part in enumerate(command):
        if part in ("-A", "--app") and i + 1 < len(command):
            return command[i + 1]
        if part.startswith("--app="):
            return part.split("=", 1)[1]
        if part.startswith("-A") and len(part) > 2:
            return part[2:]
    return None


def celery_workdirs(command: list[str]) -> list[str]:
    """The directories Celery would chdir into: `--workdir DIR`, `--workdir=DIR` (it has no short
    form) anywhere in the command, and CELERY_WORKDIR, which the worker inherits from the agent."""
    found = [os.environ[WORKDIR_ENV]] if os.environ.get(WORKDIR_ENV) else []
    for i, part in enumerate(command):
        if part == "--workdir" and i + 1 < len(command):
            found.append(command[i + 1])
        elif part.startswith("--workdir="):
            found.append(part.split("=", 1)[1])
    return found


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
    """Each FORWARDED signal passed on to the worker through a pidfd taken now, while it is our
    unreaped child: once the agent has reaped it (its teardown takes seconds), the pidfd names the
    dead process (ESRCH), never one that reused its pid. Where pidfds are missing (before Linux
    5.3), by pid."""
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except OSError:
        pidfd = None

    def forward(signum, _frame) -> None:
        try:
            if pidfd is not None:
                signal.pidfd_send_signal(pidfd, signum)
            else:
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
