"""Who the agent believes on the probe's socket. The worker's probe holds the socket close-on-exec,
but a process forked from a pool child (a task's helper, which may then drop to another user) still
holds it, and could tell the agent that a task it names was killed (the agent would revoke it on
every worker and dead-letter a message of its choosing, which `oomlab replay` sends with the broker's
credentials). So the kernel stamps each datagram with its sender's real pid (SO_PASSCRED), and a
line is believed only when that pid is the one the line claims and is the worker's main process or
one of its pool children (a direct child of the main process). Others are dropped and counted; the
first is said.

A pid names a process only while it lives: a pool child that died (its pid still in the pool) and a
program that took its pid since are one pid. So the kernel also hands over a pidfd of each sender
(SO_PASSPIDFD, Linux 6.5+), and where pidfds are files of their own (pidfs, 6.9+: one inode per
process, kept after it is reaped) a pid is believed only as the process first believed under it; a
new one under that pid is checked afresh, and only while it is alive, so its /proc files are its own.

A sender running as root with CAP_SYS_ADMIN may stamp another pid: it could as well ptrace the
worker, so the check is for programs that run as another user, or without that capability."""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Callable, Iterator

from oomlab.probe import agent_events
from oomlab.probe.events import WORKER_READY, ProbeLine, decode

_DATAGRAM = 1 << 20
MAIN_ONLY = frozenset(
    {agent_events.APP, agent_events.LOST, agent_events.REVOKED, WORKER_READY}
)  # the main process's own
_UCRED = struct.Struct("iII")  # struct ucred: pid, uid, gid
_FD = struct.Struct("i")
SO_PASSPIDFD = getattr(socket, "SO_PASSPIDFD", 76)  # Linux 6.5+; Python 3.11's socket module lacks both
SCM_PIDFD = getattr(socket, "SCM_PIDFD", 4)
_ANCILLARY = socket.CMSG_SPACE(_UCRED.size) + socket.CMSG_SPACE(_FD.size)
IDENTITIES_MAX = 4096  # pids whose process is known by its pidfs inode: the oldest are forgotten past it


def stamp_senders(sock: socket.socket) -> None:
    """The agent's end: every datagram arrives with its sender's credentials and, where the kernel
    can, a pidfd of the sender."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_PASSPIDFD, 1)
    except OSError:  # before Linux 6.5: pids alone (the race is said in docs/security.md)
        pass


class ProbeInbox:
    def __init__(self, sock: socket.socket, main_pid: int):
        self.sock = sock
        self.main_pid = main_pid
        self.report: Callable[[str], None] | None = None  # one sentence to the agent's log
        self.forged = 0  # datagrams dropped: not from the worker's main process or a pool child
        # an fd held in reserve: out of fds (EMFILE), a new pool child's /proc file could not be opened
        # and its events would be dropped as forged; the spare is given up for that one read
        self._spare: int | None = _reserve()
        self._worker_uid: int | None = None  # the main process's effective uid, as last read
        self.identities: dict[int, int] = {}  # pid -> the pidfs inode of the process believed under it
        self._pidfs = pidfds_are_files()

    def read(self, pool: set[int]) -> Iterator[ProbeLine]:
        """Every line waiting on the socket that its sender may send (`pool`: the pool children known)."""
        while True:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(_DATAGRAM, _ANCILLARY, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            sender, uid, pidfd = _credentials(ancillary)
            try:
                line = decode(data)
                claimed = line is not None and line["pid"] == sender
                if claimed and line is not None and sender is not None and self._is(sender, line, uid, pool, pidfd):
                    yield line
                else:
                    self._drop(sender, uid)
            finally:
                if pidfd is not None:
                    os.close(pidfd)

    def _is(self, sender: int, line: ProbeLine, uid: int | None, pool: set[int], pidfd: int | None) -> bool:
        """The line's sender may send it: by pid alone where the kernel gives no pidfs pidfd, else as
        the very process believed under that pid, or one checked afresh while it is alive."""
        if pidfd is None or not self._pidfs or sender == self.main_pid:  # the main process: ours, unreaped
            return self._believed(line, sender, uid, pool)
        inode = os.fstat(pidfd).st_ino
        if self.identities.get(sender) == inode:
            return self._as_the_worker(line, uid)
        # a pid not seen, or another process under it since: believed only while alive, as a pool child
        if not pidfd_alive(pidfd) or not self._believed(line, sender, uid, set()) or not pidfd_alive(pidfd):
            return False
        self.identities[sender] = inode
        while len(self.identities) > IDENTITIES_MAX:
            self.identities.pop(next(iter(self.identities)))
        return True

    def _believed(self, line: ProbeLine, sender: int, uid: int | None, pool: set[int]) -> bool:
        """From the worker's main process, or one of its pool children running as the worker does: a
        helper a task forks from the main process (a solo, threads or gevent pool runs tasks there)
        and then drops to another user is not believed. The app's settings come from the main
        process only."""
        if sender == self.main_pid:
            return True
        if not self._as_the_worker(line, uid):
            return False
        return sender in pool or self._parent(sender) == self.main_pid

    def _as_the_worker(self, line: ProbeLine, uid: int | None) -> bool:
        """Not a main-process event, from a sender running as the worker does."""
        if line.get("ev") in MAIN_ONLY or uid is None:
            return False
        if uid != self._worker_uid:  # read again only on a mismatch (the worker may have dropped to --uid)
            self._worker_uid = self._owner(self.main_pid)
        return uid == self._worker_uid

    def _parent(self, pid: int) -> int | None:
        return self._from_proc(_read_parent, pid)

    def _owner(self, pid: int) -> int | None:
        return self._from_proc(_read_euid, pid)

    def _from_proc(self, read: Callable[[int], int | None], pid: int) -> int | None:
        """`read(pid)` from /proc; None once the process is gone. Out of fds, the spare is given up."""
        try:
            return read(pid)
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE) or self._spare is None:
                return None
        os.close(self._spare)
        try:
            return read(pid)
        except OSError:
            return None
        finally:
            self._spare = _reserve()

    def _drop(self, sender: int | None, uid: int | None) -> None:
        self.forged += 1
        if self.forged == 1 and self.report is not None:
            self.report(
                f"dropped a probe event from pid {sender} (uid {uid}), which is not the worker's main process "
                f"or one of its pool children: a program a task started may be forging events; "
                f"further ones are dropped and counted, not said"
            )


def _credentials(ancillary: list[tuple[int, int, bytes]]) -> tuple[int | None, int | None, int | None]:
    """The sender's pid and uid, and the pidfd the kernel put in our fd table (the caller closes it)."""
    pid = uid = pidfd = None
    for level, kind, data in ancillary:
        if level != socket.SOL_SOCKET:
            continue
        if kind == socket.SCM_CREDENTIALS and len(data) >= _UCRED.size:
            pid, uid, _gid = _UCRED.unpack_from(data)
        elif kind == SCM_PIDFD and len(data) >= _FD.size:
            value = _FD.unpack_from(data)[0]
            pidfd = value if value >= 0 else None  # the kernel's error when it could not make one (EMFILE)
    return pid, uid, pidfd


def pidfd_alive(pidfd: int) -> bool:
    """The process is alive (not exited): its pid is its own until it is."""
    try:
        with open(f"/proc/self/fdinfo/{pidfd}", "rb") as info:
            for line in info:
                if line.startswith(b"Pid:"):
                    return int(line.split()[1]) > 0
    except (OSError, ValueError):
        return False
    return False


def pidfds_are_files() -> bool:
    """pidfs (Linux 6.9+): each process's pidfd has an inode of its own, so two pidfds can be told to
    be one process. Before it, a pidfd is an anonymous inode, as an eventfd is: on the same device."""
    fds: list[int] = []
    try:
        fds.append(os.pidfd_open(os.getpid()))
        fds.append(os.eventfd(0, os.EFD_CLOEXEC))
        return os.fstat(fds[0]).st_dev != os.fstat(fds[1]).st_dev
    except OSError:
        return False
    finally:
        for fd in fds:
            os.close(fd)


def parent_pid(pid: int) -> int | None:
    """A process's parent, from /proc (None once it is gone, or unreadable)."""
    try:
        return _read_parent(pid)
    except OSError:
        return None


def _read_parent(pid: int) -> int | None:
    with open(f"/proc/{pid}/stat", "rb") as stat:
        data = stat.read()
    fields = data[data.rfind(b")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 else None


def _read_euid(pid: int) -> int | None:
    """The effective uid a process runs as (its status, not its /proc directory's owner, which is
    root for a process made undumpable by dropping privileges, as `celery worker --uid` does)."""
    with open(f"/proc/{pid}/status", "rb") as status:
        for line in status:
            if line.startswith(b"Uid:"):
                return int(line.split()[2])
    return None


def _reserve() -> int | None:
    try:
        return os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
