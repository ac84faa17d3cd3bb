"""A pid names a process only while it lives. A pool child the agent believed dies; a program a task
started (not a child of the worker's main process) is given the same pid and speaks for it on the
probe's socket. By pid alone it is the pool child (its pid is still in the pool); the kernel's pidfd
of each sender (SCM_PIDFD, one pidfs inode per process) tells them apart. The pids are made to
collide for real, as CRIU does: /proc/sys/kernel/ns_last_pid (root), so a fork takes the pid wanted.
Here the test process plays the worker's main process; no worker runs."""

from __future__ import annotations

import json
import os
import select
import socket
import time

import pytest
from oomlab.agent.probe_inbox import ProbeInbox, pidfds_are_files, stamp_senders
from oomlab.probe.events import CHILD_INIT, PRERUN

ATTEMPTS = 200  # another process on the machine may fork between the write and ours: try again
LIFETIME = 30.0  # a child waits this long at most for the test's word: a failed test leaves no process


def _wait_word(done_r: int) -> None:
    """In a child: until the test says so (or LIFETIME), then gone."""
    select.select([done_r], [], [], LIFETIME)
    os._exit(0)


def _line(ev: str, pid: int, **fields) -> bytes:
    return json.dumps({"ev": ev, "pid": pid, "t": time.monotonic(), **fields}).encode()


def _fork_at(pid: int) -> int:
    """fork() into the pid wanted: 0 in the child, the pid in the parent, -1 when another process
    took it first (the stray child exits at once)."""
    with open("/proc/sys/kernel/ns_last_pid", "w") as last:
        last.write(str(pid - 1))
    child = os.fork()
    if child == 0:
        if os.getpid() != pid:
            os._exit(0)
        return 0
    if child != pid:
        os.waitpid(child, 0)
        return -1
    return child


def _send_as(sender_end: socket.socket, pid: int, line_of) -> bool:
    """A direct child of this process at `pid` sends `line_of(pid)` and exits; False when the pid
    could not be had."""
    for _ in range(ATTEMPTS):
        child = _fork_at(pid)
        if child == 0:
            sender_end.send(line_of(os.getpid()))
            os._exit(0)
        if child > 0:
            os.waitpid(child, 0)
            return True
    return False


def _forge_as(sender_end: socket.socket, pid: int, line_of) -> bool:
    """The same from a grandchild (a task's program: its parent is not the main process)."""
    middle = os.fork()
    if middle == 0:
        try:
            os._exit(0 if _send_as(sender_end, pid, line_of) else 3)
        finally:
            os._exit(4)
    return os.waitstatus_to_exitcode(os.waitpid(middle, 0)[1]) == 0


@pytest.fixture
def inbox():
    if os.geteuid() != 0:
        pytest.fail("this test makes pids collide through /proc/sys/kernel/ns_last_pid: run it as root")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    stamp_senders(ours)
    yield ProbeInbox(ours, os.getpid()), theirs
    ours.close()
    theirs.close()


def _believed(inbox: ProbeInbox, pool: set[int]) -> list[dict]:
    return [dict(line) for line in inbox.read(pool)]


def _alive_child_says(
    inbox: ProbeInbox, theirs: socket.socket, ev: str, at: int | None = None, last: bytes | None = None
) -> tuple[int, dict]:
    """A direct child (at pid `at`, if given) sends one line and lives until the inbox has read it;
    then it sends `last`, if given, and exits, reaped."""
    done_r, done_w = os.pipe()
    child = -1
    for _ in range(ATTEMPTS if at else 1):
        child = _fork_at(at) if at else os.fork()
        if child >= 0:
            break
    assert child >= 0, f"pid {at} could not be had in {ATTEMPTS} tries"
    if child == 0:
        theirs.send(_line(ev, os.getpid()))
        select.select([done_r], [], [], LIFETIME)
        if last is not None:
            theirs.send(last.replace(b'"pid": 0', f'"pid": {os.getpid()}'.encode()))
        os._exit(0)
    seen: list[dict] = []
    try:
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            seen = _believed(inbox, set())
            time.sleep(0.01)
    finally:
        os.write(done_w, b"x")
        os.waitpid(child, 0)
        os.close(done_r)
        os.close(done_w)
    assert len(seen) == 1, seen
    return child, seen[0]


def test_a_program_given_a_dead_pool_childs_pid_is_not_believed_and_a_new_pool_child_is(inbox):
    inbox, theirs = inbox
    assert pidfds_are_files(), "this kernel (6.9+) gives each process a pidfd inode of its own"
    # a pool child (a direct child of the main process) says it is ready, and is believed; then it dies
    child, ready = _alive_child_says(inbox, theirs, CHILD_INIT)
    assert ready["ev"] == CHILD_INIT and ready["pid"] == child and child in inbox.identities

    # a task's program takes its pid and says a task of its choosing runs there; the pool still lists it
    forged = lambda pid: _line(PRERUN, pid, task_id="chosen-by-the-forger", name="x.y")  # noqa: E731
    assert _forge_as(theirs, child, forged), f"pid {child} could not be had in {ATTEMPTS} tries"
    assert _believed(inbox, {child}) == [] and inbox.forged == 1, "the forger spoke as the dead pool child"

    # Celery forks a new pool child that is given the same pid: a new process, checked afresh, believed
    again, ready = _alive_child_says(inbox, theirs, CHILD_INIT, at=child)
    assert again == child and ready["pid"] == child and inbox.forged == 1


def test_a_pool_childs_lines_read_after_it_was_reaped_are_still_its_own(inbox):
    """An OOM-killed pool child's last lines (the task it started) are often read after Celery reaped
    it: the pidfs inode outlives the process, so they are believed."""
    inbox, theirs = inbox
    started_line = _line(PRERUN, 0, task_id="t-1", name="x.y")  # its pid filled in by the child
    child, ready = _alive_child_says(inbox, theirs, CHILD_INIT, last=started_line)  # reaped before it is read
    assert ready["ev"] == CHILD_INIT
    [started] = _believed(inbox, {child})
    assert started["task_id"] == "t-1" and inbox.forged == 0


def test_out_of_fds_the_kernel_gives_no_pidfd_and_the_line_is_judged_by_its_pid(inbox):
    """With the agent's fd table full the kernel cannot make the sender's pidfd and says so in the
    message (a negative number, or the control data cut): never a crash, the pid rule as before."""
    import resource

    inbox, theirs = inbox
    done_r, done_w = os.pipe()
    child = os.fork()
    if child == 0:
        theirs.send(_line(CHILD_INIT, os.getpid()))
        _wait_word(done_r)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held: list[int] = []
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(64, len(os.listdir("/proc/self/fd")) + 8), hard))
        with pytest.raises(OSError):
            while True:
                held.append(os.dup(0))
        time.sleep(0.2)
        seen = _believed(inbox, {child})  # a pool child the watcher knows: believed by its pid
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        os.write(done_w, b"x")
        os.waitpid(child, 0)
    assert [line["pid"] for line in seen] == [child] and inbox.forged == 0
