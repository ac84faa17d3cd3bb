"""One thread that waits on every source at once (observe.detectors.readable: any fd number): the
probe's socket, a pidfd per pool child and for the worker's main process, the memory cgroup's OOM
notifier and /dev/kmsg where readable. It keeps only what attribution needs (the task in flight in
each process), never a record per task, so it stays small in a worker that runs for months.

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
kill. Finding none, the counter is read again at once (the kernel sends SIGKILL right after it counts,
in one locked section): still none, the victim is already gone, a program (a pool child being killed
is dying or has exited). Each pool child has its own leaf cgroup, which counts the kills in its tree
(on v1 a kill is counted only there): the leaf that counted it names the pool child, and the task is
the first there whose postrun says the leaf had counted it by the task's end, else the one running,
the program's pid unknown. A kill no leaf accounts for waits for an exit to claim it, as before.

What the watcher cannot do is said once (PROBLEMS_MAX kept): a pool child with no pidfd (EMFILE)
is watched through /proc instead (oomlab.observe.detectors.exits); a round that fails is said once
and the watcher goes on.

NO_KERNEL_NOTICE_ENV=1 makes the agent open neither the notifier nor the kernel log: the container's
case on a host (for tests and benchmarks)."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from oomlab.agent import dying
from oomlab.agent.counter_watch import COUNTER_S, CounterWatch
from oomlab.agent.kills import Kill
from oomlab.agent.probe_inbox import ProbeInbox
from oomlab.observe.detectors.exits import ExitWatcher
from oomlab.observe.detectors.kmsg import KernelKill, KmsgReader
from oomlab.observe.detectors.readable import readable
from oomlab.observe.priority import raise_thread_priority
from oomlab.probe import agent_events
from oomlab.probe.events import CHILD_INIT, CHILD_SHUTDOWN, POSTRUN, PRERUN, WORKER_READY, ProbeLine
from oomlab.worker.limits.base import LEAF_PREFIX, CgroupBackend, OomNotifier, keyed_counters, read_int, read_text

SWITCH_INTERVAL_S = 0.0005  # the agent's GIL switch interval: a woken watcher waits at most this for the GIL
KILL_CLOCK_SLACK_S = 0.005  # the kernel log's stamp mapped onto CLOCK_MONOTONIC: within a few ms
CLAIM_S = 2.0  # without the kernel log: how long a counted kill waits for a pool child's death to claim it
RECENT = 4  # tasks kept per pool child: the task of a program whose kill is read late is among them
_LEAF = re.compile(r"/leaf-(\d+)/?$")
NO_KERNEL_NOTICE_ENV = "OOMLAB_AGENT_NO_KERNEL_NOTICE"
POLLED_S = 0.1  # how often a process watched without a pidfd is looked for in /proc
PROBLEMS_MAX = 100
_MESSAGES = 1000  # redelivered tasks' messages kept past a kill (its next delivery may run elsewhere)


@dataclass
class Running:
    task_id: str
    name: str | None
    ended: float | None = None  # its postrun's CLOCK_MONOTONIC
    leaf_kills: int | None = None  # the kills its pool child's leaf had counted by its end (its postrun)


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
        self.inbox = ProbeInbox(sock, main_pid)  # only the worker's main process and pool children are believed
        self.exits = ExitWatcher()
        self.exits.watch(main_pid)
        self.running: dict[int, Running] = {}  # pid -> the task in flight there
        # pid -> its last RECENT tasks, ended or running: a task that saw its program killed may end
        # before the kill is read (the kernel's line, or the counter read late)
        self.recent: dict[int, deque[Running]] = {}
        self.shut_down: set[int] = set()  # pids that said they exit (recycled), not killed
        self.pool: set[int] = set()
        self.redelivered: set[str] = set()
        self.messages: dict[str, dict[str, Any]] = {}  # task id -> message, until the task ends (bounded)
        self.queue: str | None = None  # the queue the worker consumes, when it is one (-Q, else its app line)
        self.queues: set[str] = set()  # every queue the worker consumes (its app line)
        self.problems: list[str] = []  # what the watcher cannot do, one sentence each, each once
        self.report: Callable[[str], None] | None = None  # says each problem as it comes (report_to)
        self.notifier: OomNotifier | None = None
        self.kmsg: KmsgReader | None = None
        self.counter: CounterWatch | None = None
        self._oom_count = 0
        self._stop_r, self._stop_w = os.pipe()
        self._kernel_kills: dict[int, KernelKill] = {}
        self._named: set[int] = set()  # pool children reported from the kernel's line, before their exit
        self._named_programs: set[int] = set()  # programs reported from the counter (pids kept: few, and small)
        self._unclaimed_since: float | None = None  # a counted kill no death has claimed yet (no kernel log)
        self._leaf_claimed: dict[int, int] = {}  # pool child -> the kills its leaf counted that were handled
        # pool child -> its leaf's kills at the last read that found no victim being killed: at the next
        # read (which comes at once) the victims of those have their SIGKILL, so those gone are programs
        self._leaves_seen: dict[int, int] | None = None
        self._look_again = False
        self._next_quiet = 0.0  # the next read of the counter when select timed out (no notifier, no kernel log)
        self.main_reported = False  # the main process's kill went to on_kill (a task ran in it)
        self.task_listeners: list[Callable[[str, int], None]] = []  # (task name, exact peak) per finished task
        self.line_listeners: list[Callable[[ProbeLine], None]] = []  # every probe line (--events); must not block
        blind = os.environ.get(NO_KERNEL_NOTICE_ENV) == "1"
        if group is not None and not blind:
            try:
                self.notifier = group.open_oom_notifier()
            except OSError as exc:
                self.problem(
                    f"cannot open the OOM notifier of {group.path}: {exc.strerror}; the counter is read on each exit"
                )
            if group.kernel_name:
                self.kmsg = KmsgReader.open(group.kernel_name, lambda pid: pid in self.pool)
        if group is not None:
            self._oom_count = group.oom_kill_count()
        if self.kmsg is None:
            peaks = "a task's own peak is known under --memory only" if group is not None else "peaks are unknown"
            self.problem(f"/dev/kmsg is not readable here: {peaks}, no detection time is measured")
        if group is not None and self.kmsg is None and (self.notifier is None or group.oom_notice == "polled"):
            self.counter = CounterWatch.open(group)

    def problem(self, sentence: str) -> None:
        """Said once, however often it recurs (a round failing ten times a second is one line)."""
        if sentence in self.problems or len(self.problems) >= PROBLEMS_MAX:
            return
        self.problems.append(sentence)
        if self.report is not None:
            self.report(sentence)

    def report_to(self, report: Callable[[str], None]) -> None:
        """The problems met so far said now, and each later one as it comes."""
        for sentence in self.problems:
            report(sentence)
        self.report = report

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
                self.problem(f"the watcher failed ({exc!r}); it goes on, and says this once")
                time.sleep(0.1)

    def poll_once(self, timeout: float = 1.0) -> bool:
        if self._unclaimed_since is not None:
            timeout = min(timeout, max(0.0, self._unclaimed_since + CLAIM_S - time.monotonic()))
        if self.counter is not None:
            timeout = min(timeout, self.counter.timeout(time.monotonic()))
        if self._look_again:
            timeout = min(timeout, COUNTER_S)
        if self.exits.polled:
            timeout = min(timeout, POLLED_S)
        fds = [self._stop_r, self.sock.fileno(), *self.exits.fds()]
        if self.notifier:
            fds.append(self.notifier.fileno())
        if self.kmsg:
            fds.append(self.kmsg.fileno())
        ready = readable(fds, timeout)
        now = time.monotonic()
        quiet = not ready and self.kmsg is None and self.group is not None and self._unclaimed_since is None
        if quiet and now >= self._next_quiet:  # the counter's short timeouts wake it far more often
            self._next_quiet = now + 1.0
            if self.group is not None and self.group.oom_kill_count() > self._oom_count:
                self._unclaimed_since = now  # no notifier here (v1 in a container): the counter, once a second
        if self._stop_r in ready:
            return False
        pidfds = set(self.exits.fds())
        if self.notifier and self.notifier.fileno() in ready:
            self.notifier.drain()
            if self.kmsg is None and self._unclaimed_since is None:
                self._unclaimed_since = now
        if self.sock.fileno() in ready:
            self._read_probe()  # first: the task a victim runs is known before its kill is handled
        # a victim named from a read is seen when that read returned, not at the wake-up: in a container
        # the agent shares the group at its limit, and its own allocations can stall until the kill
        # (seen: the counter read 113 ms after the wake-up, before the kernel had logged the kill)
        if self.counter is not None:
            count = self.counter.poll(now)
            if count is None and self._look_again and self.group is not None:
                count = self.group.oom_kill_count()  # every leaf's, though the watch cooled down
            self._look_again = False
            if count is not None and count > self._oom_count:
                self._name_victims(count, time.monotonic())
            elif count is not None:
                self._leaves_seen = None
        if self.kmsg and self.kmsg.fileno() in ready:
            self._read_kmsg(now)
            read = time.monotonic()
            for victim in [pid for pid in self._kernel_kills if pid in self.pool]:
                self._named.add(victim)  # the kernel named it: handled now, not when its exit is noticed
                self._exited(victim, read, named_by="kernel log")
            for victim in [pid for pid in self._kernel_kills if pid != self.main_pid and pid not in self.pool]:
                self._descendant(self._kernel_kills.pop(victim), read)
        exits = [self.exits.exited(fd) for fd in ready if fd in pidfds]
        for pid in exits + (self.exits.gone() if self.exits.polled else []):
            if pid in self._named:  # handled from the kernel's line; its leaf can go now
                self._named.discard(pid)
                self._leave(pid, now)
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
                self._program_killed(pid, self._pool_parent(pid) or self._leaf_of(pid), now)
                return
        # none: the kernel sends SIGKILL right after it counts (one locked section), so a victim of a kill
        # counted by this read is dying or gone at the next, which comes at once
        if (seen := self._leaves_seen) is not None:
            self._programs_gone_in_pool(now, seen)
        self._leaves_seen = {child: self._leaf_kills(child) or 0 for child in self.pool}
        self._look_again = any(n > self._leaf_claimed.get(c, 0) for c, n in self._leaves_seen.items())

    def _programs_gone_in_pool(self, now: float, seen: dict[int, int] | None = None) -> None:
        """Kills counted in a leaf (up to `seen`, its count at an earlier read) whose pool child lives
        on (not dying, not exited: not the victim)."""
        for child in sorted(self.pool):
            if not dying.is_dying(child) and not self.exits.has_exited(child):
                self._programs_gone(child, now, None if seen is None else seen.get(child, 0))

    def _programs_gone(self, child: int, now: float, upto: int | None = None) -> None:
        """Kills pool child `child`'s leaf counted (up to `upto`) that nothing handled: programs of its
        tree, gone before the kill was read; each named with its pool child and task, its pid unknown."""
        counted = min(self._leaf_kills(child) or 0, upto if upto is not None else 1 << 62)
        while counted > self._leaf_claimed.get(child, 0):
            kill = Kill(pid=None, role="descendant", cause="oom", seen_mono=now, queue=self.queue)
            kill.parent_pid = child
            if (task := self._task_of(child, self._leaf_claimed.get(child, 0) + 1)) is not None:
                kill.task_id, kill.task_name = task.task_id, task.name
            kill.limit_bytes, kill.group_bytes = self._limit(), self._group_peak()
            self._claim(child)
            self.on_kill(kill)

    def _task_in(self, parent: int | None, killed_at: float) -> Running | None:
        """The task running in pool child `parent` when its program was killed at `killed_at`: the one
        running now, or the one that ended there since (its postrun read before the kill's news)."""
        if parent is None:
            return None
        running = self.running.get(parent)
        if running is not None:
            return running
        tasks = self.recent.get(parent) or ()
        last = tasks[-1] if tasks else None
        return last if last is not None and (last.ended or 0.0) >= killed_at - KILL_CLOCK_SLACK_S else None

    def _task_of(self, child: int, kill: int) -> Running | None:
        """The task whose program was the `kill`-th its pool child's leaf counted: the first that
        ended with the leaf counting it (its postrun's count), else the one running; None when an
        ended task's count is unknown, or the task is older than those kept."""
        tasks = list(self.recent.get(child) or ())
        for i, task in enumerate(t for t in tasks if t.ended is not None):
            if task.leaf_kills is None:
                return None
            if task.leaf_kills >= kill:
                return None if i == 0 and len(tasks) == RECENT else task
        return self.running.get(child)

    def _leaf_kills(self, child: int) -> int | None:
        """The kills pool child `child`'s leaf cgroup counted (in its tree only), None without a leaf."""
        if self.group is None:
            return None
        text = read_text(os.path.join(self.group.path, f"{LEAF_PREFIX}{child}", self.group.events_file))
        return None if text is None else keyed_counters(text).get("oom_kill", 0)

    def _leaf_of(self, pid: int) -> int | None:
        """The pool child whose leaf cgroup process `pid` is in (its parents may be gone)."""
        text = read_text(f"/proc/{pid}/cgroup") or ""
        for line in text.splitlines():
            match = _LEAF.search(line)
            if match and int(match.group(1)) in self.pool:
                return int(match.group(1))
        return None

    def _claim(self, child: int | None) -> None:
        """One kill handled, counted in pool child `child`'s leaf (None: elsewhere in the group)."""
        self._oom_count += 1
        if child is not None:
            self._leaf_claimed[child] = self._leaf_claimed.get(child, 0) + 1

    def _program_killed(self, pid: int, parent: int | None, now: float) -> None:
        """A program a task started, found being killed when the counter moved (no kernel log)."""
        running = self._task_in(parent, now)
        kill = Kill(pid=pid, role="descendant", cause="oom", seen_mono=now, queue=self.queue)
        kill.program, kill.parent_pid, kill.peak_bytes = dying.command_name(pid), parent, dying.peak_rss(pid)
        kill.named_by = "oom counter"
        if running is not None:
            kill.task_id, kill.task_name = running.task_id, running.name
        kill.limit_bytes, kill.group_bytes = self._limit(), self._group_peak()
        self._claim(parent)
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
            self._claim(parent)  # this kill is claimed: a pool child's later SIGKILL is not taken for one
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
        """Without the kernel log: kills the cgroup counted that no pool child's death claimed: a
        program's, named from the leaf that counted it, else (no leaf did) its task unknown."""
        self._unclaimed_since = None
        if self.group is None:
            return
        self._programs_gone_in_pool(now)
        count = self.group.oom_kill_count()
        for _ in range(max(0, count - self._oom_count)):
            kill = Kill(pid=None, role="descendant", cause="oom", seen_mono=now, queue=self.queue)
            kill.limit_bytes, kill.group_bytes = self._limit(), self._group_peak()
            self.on_kill(kill)
        self._oom_count = max(self._oom_count, count)
        self._leaves_seen = None

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
        for line in self.inbox.read(self.pool):
            self._handle(line)

    def _handle(self, line: ProbeLine) -> None:
        ev, pid = line["ev"], line["pid"]
        for on_line in self.line_listeners:
            on_line(line)
        extra: dict[str, Any] = dict(line)  # the agent's own events carry fields the recorder's lines do not
        if ev == PRERUN:
            self.running[pid] = Running(line.get("task_id") or "?", line.get("name"))
            self.recent.setdefault(pid, deque(maxlen=RECENT)).append(self.running[pid])
        elif ev == POSTRUN:
            ended = self.running.pop(pid, None)
            if ended is not None:
                ended.ended, ended.leaf_kills = line.get("t") or time.monotonic(), line.get("leaf_kills")
            self.messages.pop(line.get("task_id") or "", None)
            peak = line.get("tree_peak") if line.get("tree_peak_exact") else line.get("peak_rss")
            name = line.get("name")
            if peak and name:
                for listener in self.task_listeners:
                    listener(name, peak)
        elif ev == CHILD_INIT:
            self.pool.add(pid)
            self._watch(pid)
        elif ev == CHILD_SHUTDOWN:
            self.shut_down.add(pid)
        elif ev == agent_events.MESSAGE:
            self.messages[line.get("task_id") or ""] = extra.get("message") or {}
            while len(self.messages) > _MESSAGES:  # killed tasks never redelivered here: the oldest go
                self.messages.pop(next(iter(self.messages)))
        elif ev == agent_events.APP:
            self.redelivered = set(extra.get("redelivered") or ())
            self.queues = {str(queue) for queue in extra.get("queues") or ()}
            if self.queue is None and len(self.queues) == 1:
                self.queue = next(iter(self.queues))
            self.on_event(line)
        elif ev != WORKER_READY:
            self.on_event(line)

    def _exited(self, pid: int, now: float, named_by: str | None = None) -> None:
        role = "main" if pid == self.main_pid else "pool child"
        self.pool.discard(pid)
        running = self.running.pop(pid, None)
        if pid in self.shut_down:  # it said it was leaving: recycled or shut down, not killed
            self.shut_down.discard(pid)
            self._leave(pid, now)
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
            kill.queue = self._queue_of(kill.message)
        kill.peak_bytes, kill.limit_bytes, kill.group_bytes = self._peak(pid, kernel), self._limit(), self._group_peak()
        if kernel is not None:
            kill.detection_s = max(0.0, now - kernel.kernel_mono)
        self.on_kill(kill)
        if named_by is None:  # else still exiting, in its leaf: its exit's turn
            self._leave(pid, now)

    def _leave(self, pid: int, now: float) -> None:
        """A pool child gone: kills its leaf counted that nothing handled were its programs' (gone
        too), named before the leaf goes; then its leaf and what is kept of it go."""
        if self.kmsg is None and pid != self.main_pid:
            self._programs_gone(pid, now)
        self._drop_leaf(pid)
        self.recent.pop(pid, None)
        self._leaf_claimed.pop(pid, None)

    def _watch(self, pid: int) -> None:
        self.exits.watch(pid)
        if self.exits.no_pidfd is not None:
            self.problem(
                f"cannot open a pidfd for a pool child ({self.exits.no_pidfd}): such a child is looked for in "
                f"/proc every {POLLED_S:g} s, its kill seen up to that late"
            )

    def _queue_of(self, message: dict | None) -> str | None:
        """The queue a killed task came from: its message's routing key where that names one of the
        worker's queues (a routing key is not always a queue's name), else the worker's one queue,
        else the routing key as given (the metrics make it printable)."""
        routing_key = (message or {}).get("queue")
        if routing_key in self.queues:
            return routing_key
        return self.queue or routing_key

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
            leaf = self._leaf_kills(pid) if pid != self.main_pid else None
            if leaf is not None:  # a pool child's kill is counted in its own leaf (v1: there only)
                counted = leaf > self._leaf_claimed.get(pid, 0)
            else:
                counted = self.group.oom_kill_count() > self._oom_count
            if counted:  # one kill claimed; any other stays for its own victim
                self._claim(pid if leaf is not None else None)
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
