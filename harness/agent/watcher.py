"""One thread that waits on every source at once (select): the probe's socket, a pidfd per pool
child and for the worker's main process, the memory cgroup's OOM notifier and /dev/kmsg where
readable. It keeps only what attribution needs (the task in flight in each process), never a
record per task, so it stays small in a worker that runs for months.

A process that exits without the probe's child_shutdown and with a task in flight was killed; the
cgroup's oom_kill counter (or the kernel log naming it) says whether by the OOM killer. Where the
kernel log is readable, a pool child it names is handled at that line, not when its exit is noticed:
a victim freeing a large heap on a busy machine takes tens of milliseconds to die.

A program a task started (a subprocess, inside the worker's group) that the kernel kills is a
`descendant` kill: the kernel log names its pid, and the task is the one running in the pool child
whose leaf cgroup the log names, else the pool child found up the victim's parents. Without the
kernel log, an OOM kill the cgroup counts that no pool child's death claims within CLAIM_S is one too,
its task unknown.

Without both the OOM notifier and the kernel log (an unprivileged container on cgroup v1), the
group's kill counter is watched (CounterWatch: often only near the limit) and, when it moves, the
pool child being killed (SIGKILL pending or exiting: oomlab.agent.dying) is handled then, as one the
kernel log named, before its exit; a program a task started, found the same way, is a descendant
kill. Finding none, the kill waits for an exit to claim it, as before.

NO_KERNEL_NOTICE_ENV=1 makes the agent open neither the notifier nor the kernel log: the container's
case on a host (for tests and benchmarks)."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from oomlab.agent import dying
from oomlab.agent.counter_watch import CounterWatch
from oomlab.agent.kills import Kill
from oomlab.observe.detectors.exits import ExitWatcher
from oomlab.observe.detectors.kmsg import KernelKill, KmsgReader
from oomlab.observe.priority import raise_thread_priority
from oomlab.probe import agent_events
from oomlab.probe.events import CHILD_INIT, CHILD_SHUTDOWN, POSTRUN, PRERUN, WORKER_READY, ProbeLine, decode
from oomlab.worker.limits.base import CgroupBackend, OomNotifier, read_int

_DATAGRAM = 1 << 20
SWITCH_INTERVAL_S = 0.0005  # the agent's GIL switch interval: a woken watcher waits at most this for the GIL
KILL_CLOCK_SLACK_S = 0.005  # the kernel log's stamp mapped onto CLOCK_MONOTONIC: within a few ms
CLAIM_S = 2.0  # without the kernel log: how long a counted kill waits for a pool child's death to claim it
_LEAF = re.compile(r"/leaf-(\d+)/?$")
NO_KERNEL_NOTICE_ENV = "OOMLAB_AGENT_NO_KERNEL_NOTICE"
_MESSAGES = 1000  # redelivered tasks' messages kept past a kill (its next delivery may run elsewhere)


@dataclass
class Running:
    task_id: str
    name: str | None


class Watcher(threading.Thread):
    def __init__(
        self,
        sock: socket.socket,
        main_pid: int,
        group: CgroupBackend | None,
        on_kill: Callable[[Kill], None],
        on_event: Callable[[ProbeLine], None],
    ):
        super().__init__(name="oomlab-agent-watcher", daemon=True)
        self.sock = sock
        self.main_pid = main_pid
        self.group = group
        self.on_kill = on_kill
        self.on_event = on_event  # the agent's own events (app settings, messages, Celery's late writes)
        self.exits = ExitWatcher()
        self.exits.watch(main_pid)
        self.running: dict[int, Running] = {}  # pid -> the task in flight there
        # pid -> the task that last ended there and when (its postrun's CLOCK_MONOTONIC): a task that saw
        # its program killed may end before the kernel's line about it is read
        self.last_ended: dict[int, tuple[Running, float]] = {}
        self.shut_down: set[int] = set()  # pids that said they exit (recycled), not killed
        self.pool: set[int] = set()
        self.redelivered: set[str] = set()
        self.messages: dict[str, dict[str, Any]] = {}  # task id -> message, until the task ends (bounded)
        self.queue: str | None = None
        self.problems: list[str] = []  # what the watcher cannot do, one sentence each
        self.notifier: OomNotifier | None = None
        self.kmsg: KmsgReader | None = None
        self.counter: CounterWatch | None = None
        self._oom_count = 0
        self._stop_r, self._stop_w = os.pipe()
        self._kernel_kills: dict[int, KernelKill] = {}
        self._named: set[int] = set()  # pool children reported from the kernel's line, before their exit
        self._named_programs: set[int] = set()  # programs reported from the counter (pids kept: few, and small)
        self._unclaimed_since: float | None = None  # a counted kill no death has claimed yet (no kernel log)
        self._next_quiet = 0.0  # the next read of the counter when select timed out (no notifier, no kernel log)
        self.main_reported = False  # the main process's kill went to on_kill (a task ran in it)
        self.task_listeners: list[Callable[[str, int], None]] = []  # (task name, exact peak) per finished task
        self.line_listeners: list[Callable[[ProbeLine], None]] = []  # every probe line (--events); must not block
        blind = os.environ.get(NO_KERNEL_NOTICE_ENV) == "1"
        if group is not None and not blind:
            try:
                self.notifier = group.open_oom_notifier()
            except OSError as exc:
                self.problems.append(
                    f"cannot open the OOM notifier of {group.path}: {exc.strerror}; the counter is read on each exit"
                )
            if group.kernel_name:
                self.kmsg = KmsgReader.open(group.kernel_name, lambda pid: pid in self.pool)
        if group is not None:
            self._oom_count = group.oom_kill_count()
        if self.kmsg is None:
            peaks = "peaks come from the cgroup" if group is not None else "peaks are unknown"
            self.problems.append(f"/dev/kmsg is not readable here: {peaks}, no detection time is measured")
        if group is not None and self.kmsg is None and (self.notifier is None or group.oom_notice == "polled"):
            self.counter = CounterWatch.open(group)

    def stop(self) -> None:
        os.write(self._stop_w, b"x")
        self.join(timeout=2)

    def run(self) -> None:
        raise_thread_priority()  # nice only: beside production workers, never a real-time thread
        while True:
            try:
                if not self.poll_once():
                    return
            except Exception as exc:  # the worker goes on whatever happens here
                self.problems.append(f"the watcher failed: {exc!r}")
                time.sleep(0.1)

    def poll_once(self, timeout: float = 1.0) -> bool:
        if self._unclaimed_since is not None:
            timeout = min(timeout, max(0.0, self._unclaimed_since + CLAIM_S - time.monotonic()))
        if self.counter is not None:
            timeout = min(timeout, self.counter.timeout(time.monotonic()))
        fds = [self._stop_r, self.sock.fileno(), *self.exits.fds()]
        if self.notifier:
            fds.append(self.notifier.fileno())
        if self.kmsg:
            fds.append(self.kmsg.fileno())
        ready, _, _ = select.select(fds, [], [], timeout)
        now = time.monotonic()
        quiet = not ready and self.kmsg is None and self.group is not None and self._unclaimed_since is None
        if quiet and now >= self._next_quiet:  # the counter's short timeouts wake it far more often
            self._next_quiet = now + 1.0
            if self.group is not None and self.group.oom_kill_count() > self._oom_count:
                self._unclaimed_since = now  # no notifier here (v1 in a container): the counter, once a second
        if self._stop_r in ready:
            return False
        if self.notifier and self.notifier.fileno() in ready:
            self.notifier.drain()
            if self.kmsg is None and self._unclaimed_since is None:
                self._unclaimed_since = now
        if self.sock.fileno() in ready:
            self._read_probe()  # first: the task a victim runs is known before its kill is handled
        # a victim named from a read is seen when that read returned, not at the wake-up: in a container
        # the agent shares the group at its limit, and its own allocations can stall until the kill
        # (seen: the counter read 113 ms after the wake-up, before the kernel had logged the kill)
        if self.counter is not None and (count := self.counter.poll(now)) is not None and count > self._oom_count:
            self._name_victims(count, time.monotonic())
        if self.kmsg and self.kmsg.fileno() in ready:
            self._read_kmsg(now)
            read = time.monotonic()
            for victim in [pid for pid in self._kernel_kills if pid in self.pool]:
                self._named.add(victim)  # the kernel named it: handled now, not when its exit is noticed
                self._exited(victim, read, named_by="kernel log")
            for victim in [pid for pid in self._kernel_kills if pid != self.main_pid and pid not in self.pool]:
                self._descendant(self._kernel_kills.pop(victim), read)
        for fd in ready:
            if fd in (self._stop_r, self.sock.fileno()) or fd == (self.notifier and self.notifier.fileno()):
                continue
            if self.kmsg and fd == self.kmsg.fileno():
                continue
            pid = self.exits.exited(fd)
            if pid in self._named:  # handled from the kernel's line; its leaf can go now
                self._named.discard(pid)
                self._drop_leaf(pid)
            elif pid is not None:
                self._exited(pid, now)
        if self._unclaimed_since is not None and now - self._unclaimed_since >= CLAIM_S:
            self._unclaimed(now)
        return True

    def _name_victims(self, count: int, now: float) -> None:
        """The group counted kills none has claimed: the pool children being killed are handled now,
        before their exit (which waits for the kernel to free their memory), else a program a task
        started. None found: an exit claims the kill later, as without the counter."""
        fresh = count - self._oom_count
        victims = [pid for pid in sorted(self.pool) if pid not in self._named and dying.is_dying(pid)]
        for victim in victims[:fresh]:
            self._named.add(victim)
            self._exited(victim, now, named_by="oom counter")
        if victims:
            return
        others = set(self.group.pids() if self.group is not None else ()) - self.pool - {self.main_pid}
        for pid in sorted(others - self._named_programs):
            if dying.is_dying(pid, zombie=False):
                self._named_programs.add(pid)
                self._program_killed(pid, self._pool_parent(pid), now)
                return

    def _task_in(self, parent: int | None, killed_at: float) -> Running | None:
        """The task running in pool child `parent` when its program was killed at `killed_at`: the one
        running now, or the one that ended there since (its postrun read before the kill's news)."""
        if parent is None:
            return None
        running = self.running.get(parent)
        if running is not None:
            return running
        ended = self.last_ended.get(parent)
        return ended[0] if ended is not None and ended[1] >= killed_at - KILL_CLOCK_SLACK_S else None

    def _program_killed(self, pid: int, parent: int | None, now: float) -> None:
        """A program a task started, found being killed when the counter moved (no kernel log)."""
        running = self._task_in(parent, now)
        kill = Kill(pid=pid, role="descendant", cause="oom", seen_mono=now, queue=self.queue)
        kill.program, kill.parent_pid, kill.peak_bytes = dying.command_name(pid), parent, dying.peak_rss(pid)
        kill.named_by = "oom counter"
        if running is not None:
            kill.task_id, kill.task_name = running.task_id, running.name
        kill.limit_bytes, kill.group_bytes = self._limit(), self._group_peak()
        self._oom_count += 1
        self.on_kill(kill)

    def _descendant(self, kernel: KernelKill, now: float) -> None:
        """A program a task started, killed by the kernel: reported with its task, which goes on."""
        parent = self._pool_child_of(kernel)
        running = self._task_in(parent, kernel.kernel_mono)
        kill = Kill(pid=kernel.pid, role="descendant", cause="oom", seen_mono=now, queue=self.queue)
        kill.named_by = "kernel log"
        kill.program, kill.parent_pid, kill.peak_bytes = kernel.comm, parent, kernel.rss_bytes
        if running is not None:
            kill.task_id, kill.task_name = running.task_id, running.name
        kill.limit_bytes, kill.group_bytes = self._limit(), self._group_peak()
        kill.detection_s = max(0.0, now - kernel.kernel_mono)
        if self.group is not None:
            self._oom_count += 1  # this kill is claimed: a pool child's later SIGKILL is not taken for one
        self.on_kill(kill)

    def _pool_child_of(self, kernel: KernelKill) -> int | None:
        """The pool child whose leaf the kernel named, else the one up the victim's parents (read now:
        a killed program stays a zombie until its parent reaps it)."""
        match = _LEAF.search(kernel.memcg or "")
        if match and int(match.group(1)) in self.pool:
            return int(match.group(1))
        return self._pool_parent(kernel.pid)

    def _pool_parent(self, victim: int) -> int | None:
        """The pool child up a process's parents, if any."""
        pid: int | None = victim
        for _ in range(32):
            pid = _parent(pid) if pid is not None else None
            if pid is None or pid <= 1 or pid == self.main_pid:
                return None
            if pid in self.pool:
                return pid
        return None

    def _unclaimed(self, now: float) -> None:
        """Without the kernel log: kills the cgroup counted that no pool child's death claimed."""
        self._unclaimed_since = None
        if self.group is None:
            return
        count = self.group.oom_kill_count()
        for _ in range(max(0, count - self._oom_count)):
            kill = Kill(pid=0, role="descendant", cause="oom", seen_mono=now, queue=self.queue)
            kill.limit_bytes, kill.group_bytes = self._limit(), self._group_peak()
            self.on_kill(kill)
        self._oom_count = max(self._oom_count, count)

    def main_killed(self, code: int) -> Kill | None:
        """After the worker's exit (the watcher stopped): its main process's kill, when the kernel's
        OOM killer (or another SIGKILL) ended it and no task in it was reported already."""
        if code != 128 + signal.SIGKILL or self.main_reported:
            return None
        now = time.monotonic()
        if self.kmsg:
            self._read_kmsg(now)
        kernel = self._kernel_kills.pop(self.main_pid, None)
        counted = self.group is not None and self.group.oom_kill_count() > self._oom_count
        kill = Kill(pid=self.main_pid, role="main", cause="oom" if kernel or counted else "sigkill", seen_mono=now)
        kill.peak_bytes = kernel.rss_bytes if kernel is not None else None
        kill.limit_bytes, kill.group_bytes = self._limit(), self._group_peak()
        return kill

    def _read_kmsg(self, now: float) -> None:
        assert self.kmsg is not None
        for kill in self.kmsg.read(now):
            self._kernel_kills[kill.pid] = self.kmsg.clock.map(kill)

    def _read_probe(self) -> None:
        while True:
            try:
                data = self.sock.recv(_DATAGRAM, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            line = decode(data)
            if line is not None:
                self._handle(line)

    def _handle(self, line: ProbeLine) -> None:
        ev, pid = line["ev"], line["pid"]
        for on_line in self.line_listeners:
            on_line(line)
        extra: dict[str, Any] = dict(line)  # the agent's own events carry fields the recorder's lines do not
        if ev == PRERUN:
            self.running[pid] = Running(line.get("task_id") or "?", line.get("name"))
        elif ev == POSTRUN:
            ended = self.running.pop(pid, None)
            if ended is not None:
                self.last_ended[pid] = (ended, line.get("t") or time.monotonic())
            self.messages.pop(line.get("task_id") or "", None)
            peak = line.get("tree_peak") if line.get("tree_peak_exact") else line.get("peak_rss")
            name = line.get("name")
            if peak and name:
                for listener in self.task_listeners:
                    listener(name, peak)
        elif ev == CHILD_INIT:
            self.pool.add(pid)
            self.exits.watch(pid)
        elif ev == CHILD_SHUTDOWN:
            self.shut_down.add(pid)
        elif ev == agent_events.MESSAGE:
            self.messages[line.get("task_id") or ""] = extra.get("message") or {}
            while len(self.messages) > _MESSAGES:  # killed tasks never redelivered here: the oldest go
                self.messages.pop(next(iter(self.messages)))
        elif ev == agent_events.APP:
            self.redelivered = set(extra.get("redelivered") or ())
            self.on_event(line)
        elif ev != WORKER_READY:
            self.on_event(line)

    def _exited(self, pid: int, now: float, named_by: str | None = None) -> None:
        role = "main" if pid == self.main_pid else "pool child"
        self.pool.discard(pid)
        running = self.running.pop(pid, None)
        self.last_ended.pop(pid, None)
        if pid in self.shut_down:  # it said it was leaving: recycled or shut down, not killed
            self.shut_down.discard(pid)
            self._drop_leaf(pid)
            return
        if pid == self.main_pid and running is None:
            return  # the worker's own exit: the agent's main thread reports it (main_killed)
        self.main_reported = self.main_reported or pid == self.main_pid
        cause, kernel = self._cause(pid)
        kill = Kill(pid=pid, role=role, cause=cause, seen_mono=now, queue=self.queue, named_by=named_by)
        if running is not None:
            kill.task_id, kill.task_name = running.task_id, running.name
            kill.redelivered = running.name in self.redelivered
            kill.message = self.messages.get(running.task_id)  # kept: its next delivery's may come before this kill's
            if kill.message and kill.message.get("queue"):
                kill.queue = kill.message["queue"]
        kill.peak_bytes, kill.limit_bytes, kill.group_bytes = self._peak(pid, kernel), self._limit(), self._group_peak()
        if kernel is not None:
            kill.detection_s = max(0.0, now - kernel.kernel_mono)
        self.on_kill(kill)
        self._drop_leaf(pid)

    def _drop_leaf(self, pid: int) -> None:
        """A dead pool child's leaf (made by the probe under an agent-made group), removed once read:
        a worker that runs for months makes one per pool child. On v1 a leaf's kills are counted in
        it alone, so the baseline is taken again without it."""
        if self.group is None:
            return
        before = self.group.oom_kill_count()
        try:
            os.rmdir(os.path.join(self.group.path, f"leaf-{pid}"))
        except OSError:
            return
        self._oom_count -= before - self.group.oom_kill_count()  # v1: the leaf took its own kills with it

    def _cause(self, pid: int) -> tuple[str, KernelKill | None]:
        if self.kmsg:
            self._read_kmsg(time.monotonic())
        kernel = self._kernel_kills.pop(pid, None)
        counted = False
        if self.group is not None:
            counted = self.group.oom_kill_count() > self._oom_count
            if counted:
                self._oom_count += 1  # one kill claimed; any other stays for its own victim
        return ("oom" if counted or kernel is not None else "sigkill"), kernel

    def _peak(self, pid: int, kernel: KernelKill | None) -> int | None:
        """The task's own peak: its tree's exact peak where the pool child had a leaf of its own
        (reset at the task's start), else the victim's RSS as the kernel logged it."""
        if (peak := self._leaf_peak(pid)) is not None:
            return peak
        return kernel.rss_bytes if kernel is not None else None

    def _leaf_peak(self, pid: int) -> int | None:
        if self.group is None:
            return None
        return read_int(os.path.join(self.group.path, f"leaf-{pid}", self.group.peak_file))

    def _group_peak(self) -> int | None:
        """The worker's group's peak (where it stood at a kill: an OOM kill comes at its limit)."""
        if self.group is None:
            return None
        return self.group.peak_bytes() or self.group.usage_bytes()

    def _limit(self) -> int | None:
        if self.group is None:
            return None
        limit = read_int(self.group.file(self.group.limit_file))
        return limit if limit is not None and limit < 1 << 60 else None

    def memory(self) -> tuple[int | None, int | None]:
        """The worker's group's usage and limit now (for the metrics)."""
        if self.group is None:
            return None, None
        return self.group.usage_bytes(), self._limit()


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 else None
