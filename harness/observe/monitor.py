"""One thread that waits on every event source at once (detectors.readable): the cgroup's OOM notifier, the
kernel log, a pidfd per process, and the probe's record file. Each observation is stamped with
the monotonic time it was seen. With --oom-scope group on cgroup v1 it also kills the group the
instant the OOM notification arrives (what memory.oom.group does in the kernel on v2).

A group can be replaced under the same path (runc makes a container's cgroup anew at each restart):
the monitor sees the directory's inode change, re-opens its notifier there and counts on from what
the earlier group counted.

A round names the victim first: the kernel's kill lines are read (and each victim's pid mapped to
the task it was running, from the probe records already read) before anything else is; the
counters, the leaves and the probe file are read after. Each named victim keeps the round's trace
(`Observations.stages`), so the benchmark shows where the time between the kill and its naming went."""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from oomlab.observe.detectors.exits import ExitWatcher
from oomlab.observe.detectors.kmsg import KernelKill, KmsgReader
from oomlab.observe.detectors.readable import readable
from oomlab.observe.page_cache import ReadCache
from oomlab.observe.priority import raise_thread_priority
from oomlab.probe.events import POSTRUN, PRERUN, ProbeLine, decode
from oomlab.probe.procfs import OpenFiles
from oomlab.record.reading import MAX_LINE_BYTES, NotRegular, open_regular
from oomlab.trust import RefusedLink
from oomlab.worker.limits.base import LEAF_PREFIX, CgroupBackend, keyed_counters, read_text

SWITCH_INTERVAL_S = 0.0005  # the GIL's switch interval while a monitor runs
PROBE_CHUNK_BYTES = 4 * 1024 * 1024  # the probe file is read this much at a time (a line: a few hundred bytes)


@dataclass
class Observations:
    kernel_kills: list[KernelKill] = field(default_factory=list)
    oom_events: list[tuple[float, int]] = field(default_factory=list)  # (seen, oom_kill counter)
    exits: dict[int, float] = field(default_factory=dict)
    probe: list[ProbeLine] = field(default_factory=list)
    group_kills: list[tuple[float, list[int]]] = field(default_factory=list)
    group_replaced: list[float] = field(default_factory=list)  # when the group was found made anew
    leaf_kills: list[tuple[float, int]] = field(default_factory=list)  # (seen, owner pid) per kill counted in a leaf
    leaf_of_pid: dict[int, int] = field(default_factory=dict)  # pid -> the pool child whose leaf it is in
    # victim pid -> (when the monitor knew its pid and its task, the task or None): named in the round
    named: dict[int, tuple[float, str | None]] = field(default_factory=dict)
    stages: dict[int, dict[str, float]] = field(default_factory=dict)  # victim pid -> the naming round's trace
    oomlab_kills: dict[int, float] = field(default_factory=dict)  # pid -> when oomlab's own SIGKILL went to it


class Monitor(threading.Thread):
    def __init__(self, group: CgroupBackend, probe_path: str, emulate_group_kill: bool):
        super().__init__(name="oomlab-monitor", daemon=True)
        self.group = group
        self.probe_path = probe_path
        self.emulate_group_kill = emulate_group_kill
        self.notifier = group.open_oom_notifier()
        self.watched: set[int] = set()  # every pid of the group the monitor has seen (for the kernel log)
        name = group.kernel_name  # None: the kernel's name for the group is unknown here, so no kernel log
        self.kmsg = KmsgReader.open(name, self.watched.__contains__) if name else None
        self.exits = ExitWatcher()
        self.obs = Observations()
        self.lock = threading.Lock()
        self._new_pids: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = threading.Event()
        self._rounds = threading.Condition()
        self._round = 0
        self._events = OpenFiles()
        self._leaf_counts: dict[int, int] = {}
        self._oom_count = group.oom_kill_count() or 0  # every kill counted, over every incarnation of the group
        self._count_offset = 0  # what the group's earlier incarnations counted
        self._group_inode = _inode(group.path)
        self._probe_offset = 0
        self._probe_partial = b""
        self._probe_cache = ReadCache()  # the probe file's cache is charged to the worker's group
        self._drained = 0  # probe records already handed over by drain_probe
        self._running: dict[int, str] = {}  # pid -> the task it runs now, as the probe records read so far say
        self._named_now: list[int] = []  # victims named in the current round (their trace is completed at its end)
        self.priority: str | None = None  # how the monitor thread is scheduled (raise_thread_priority)
        # called on the monitor's thread as each victim is named: (pid, its task or None, whether it is
        # the task's own pool process rather than a program it started); must not block
        self.on_named: Callable[[int, str | None, bool], None] | None = None
        # a woken thread waits for the GIL up to the switch interval (5 ms by default) while another
        # thread of this process runs Python: the monitor's wake-up is the detection's floor
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL_S))

    @property
    def detectors(self) -> dict[str, bool]:
        return {"oom_event": True, "kmsg": self.kmsg is not None, "pidfd": not self.exits.unavailable}

    @property
    def kmsg_clock(self) -> dict[str, float | None] | None:
        """The kernel log's clock minus CLOCK_MONOTONIC as measured (None: not measured)."""
        return self.kmsg.clock.describe() if self.kmsg else None

    def watch_pid(self, pid: int) -> None:
        """Thread-safe: called by the sampler when it first sees a process."""
        owner = leaf_owner(pid)
        if owner is not None:
            with self.lock:
                self.obs.leaf_of_pid[pid] = owner
        self._new_pids.put(pid)
        os.write(self._wake_w, b"x")

    def stop(self) -> None:
        self._stopping.set()
        os.write(self._wake_w, b"x")
        self.join(timeout=5)
        if self.kmsg:  # the clock's second point: kill stamps are mapped between the two
            kills = self.kmsg.calibrate()
            with self.lock:
                self.obs.kernel_kills.extend(kills)
        self.poll_once(0)  # what arrived while stopping
        self.notifier.close()
        self._events.close()
        if self.kmsg:
            self.kmsg.close()
        self.exits.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        sys.setswitchinterval(self._switch_interval)

    def run(self) -> None:
        self.priority = raise_thread_priority(realtime=True)
        while not self._stopping.is_set():
            self.poll_once(0.02)
            with self._rounds:
                self._round += 1
                self._rounds.notify_all()

    def _await_kill_count(self, count: int, patience: float = 0.005) -> int:
        """v1 signals as the OOM begins and counts the kill a moment later: wait that moment."""
        deadline = time.monotonic() + patience
        while count <= self._oom_count and time.monotonic() < deadline:
            if self.kmsg:  # the kill line can come first: name the victim the moment it does
                if readable([self.kmsg.fileno()], 0.0002):
                    self._read_kernel(time.monotonic())
            else:
                time.sleep(0.0002)
            count = self._count()
        return count

    def _count(self) -> int:
        """Read every round through kept-open files (pread at 0 regenerates them): one syscall per
        file. On v1 a kill is counted in the victim's leaf only, so each leaf's counter says whose
        tree the victim was in."""
        total = 0
        for path in self.group.counted_events_files():
            data = self._events.read(path)
            count = keyed_counters(data.decode() if data else None).get("oom_kill", 0)
            total += count
            owner = owner_of_leaf(os.path.dirname(path))
            if owner is not None and count > self._leaf_counts.get(owner, 0):
                self._leaf_counts[owner] = count
                with self.lock:
                    self.obs.leaf_kills.append((time.monotonic(), owner))
        return self._count_offset + total

    def _follow_replaced_group(self) -> None:
        try:
            notifier = self.group.open_oom_notifier()
        except OSError:
            return  # its files are not there yet: next round
        self.notifier.close()
        self.notifier = notifier
        self._events.close()  # the old group's file: the same path now names the new group's
        self._group_inode = _inode(self.group.path)
        self._count_offset = self._oom_count
        with self.lock:
            self.obs.group_replaced.append(time.monotonic())

    def sync(self, timeout: float = 1.0) -> None:
        """Return once a whole poll round began and ended after this call: every probe record written
        before it is then in the snapshot (the result backend can be ahead of the probe otherwise)."""
        with self._rounds:
            target = self._round + 2
            self._rounds.wait_for(lambda: self._round >= target or not self.is_alive(), timeout)

    def poll_once(self, timeout: float) -> None:
        fds = [self._wake_r, self.notifier.fileno(), *self.exits.fds()]
        if self.kmsg:
            fds.append(self.kmsg.fileno())
        try:
            ready = readable(fds, timeout)
        except OSError:
            ready = []
        now = time.monotonic()
        # first the victims: the kernel's lines (pid -> task), oomlab's own kill, the exits
        if self.kmsg and self.kmsg.fileno() in ready:
            self._read_kernel(now)
        notified = self.notifier.fileno() in ready
        if notified:
            self.notifier.drain()
            if self.emulate_group_kill:
                self._kill_group(now)
        for fd in ready:
            if fd in (self._wake_r, self.notifier.fileno()) or (self.kmsg and fd == self.kmsg.fileno()):
                continue
            pid = self.exits.exited(fd)
            if pid is not None:
                with self.lock:
                    self.obs.exits.setdefault(pid, now)
        for pid in self.exits.gone() if self.exits.polled else ():  # watched without a pidfd (EMFILE)
            with self.lock:
                self.obs.exits.setdefault(pid, now)
        # then the reads that name no victim: the group's inode, every leaf's counter
        if _inode(self.group.path) not in (None, self._group_inode):
            self._follow_replaced_group()
        # the counter is read every round too: seen in CI, a kill can come with no notification
        count = self._count()
        # a notice's kill is seen at the round's wake-up (the stamp its exits get), one found by the
        # read alone when that read returned
        seen = now if notified else time.monotonic()
        if self.emulate_group_kill and not notified and count > self._oom_count:
            self._kill_group(now)
        if notified and count <= self._oom_count and self.group.oom_notice_precedes_kill:
            count = self._await_kill_count(count)
            seen = time.monotonic()  # v1 counted the kill during the wait, after the notice
        counted = time.monotonic()
        # only a kill counts as a notice: v2 also notifies memory.events for `max` and `high` events
        if count > self._oom_count:
            self._oom_count = count
            with self.lock:
                self.obs.oom_events.append((seen, count))
        if self._wake_r in ready:
            os.read(self._wake_r, 4096)
        while not self._new_pids.empty():
            pid = self._new_pids.get()
            self.watched.add(pid)
            if not self.exits.watch(pid):
                with self.lock:
                    self.obs.exits.setdefault(pid, now)
        self._tail_probe()
        if self._named_now:
            done = time.monotonic()
            with self.lock:
                for pid in self._named_now:
                    self.obs.stages[pid].update(counters_read=counted, round_done=done)
            self._named_now = []

    def _read_kernel(self, woke: float) -> None:
        """Read the kernel's new lines and name each victim of ours: its pid, then its task."""
        assert self.kmsg is not None
        read_at = time.monotonic()
        kills = self.kmsg.read(read_at)
        if not kills:
            return
        with self.lock:
            self.obs.kernel_kills.extend(kills)
        for kill in kills:
            owner = owner_of_leaf(kill.memcg) if kill.memcg else None
            self._name_victim(kill.pid, owner, {"woke": woke, "kmsg_read": read_at})

    def _kill_group(self, woke: float) -> None:
        """v1's stand-in for memory.oom.group: SIGKILL to every process of the group, each stamped
        as it is sent (the kill's own time) and named the moment the signal is in."""
        killed = []
        for pid in self.group.pids():
            sent = time.monotonic()
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.append(pid)
            with self.lock:
                first = pid not in self.obs.oomlab_kills
                self.obs.oomlab_kills.setdefault(pid, sent)
            if first:
                self._name_victim(pid, None, {"woke": woke, "signalled": time.monotonic()})
        with self.lock:
            self.obs.group_kills.append((time.monotonic(), killed))

    def _name_victim(self, pid: int, owner: int | None, stages: dict[str, float]) -> None:
        """pid -> the task it (or the pool child whose leaf it is in) runs, from the probe records
        read so far, reading the probe's file once more when they do not say yet."""
        if owner is None:
            with self.lock:
                owner = self.obs.leaf_of_pid.get(pid)
        task = self._running_task(pid, owner)
        if task is None:
            self._tail_probe()
            task = self._running_task(pid, owner)
        named = time.monotonic()
        with self.lock:
            first = pid not in self.obs.named
            if first:
                self.obs.named[pid] = (named, task)
                self.obs.stages[pid] = {**stages, "named": named}
                self._named_now.append(pid)
        if first and self.on_named is not None:
            self.on_named(pid, task, owner is None or owner == pid)

    def _running_task(self, pid: int, owner: int | None) -> str | None:
        return self._running.get(pid) or (self._running.get(owner) if owner is not None else None)

    def _tail_probe(self) -> None:
        # an attached worker's share: never a link, and never a FIFO, whose blocking open would hold
        # this thread (and the run, past SIGTERM) for ever; read a chunk at a time, a line capped
        try:
            handle = os.fdopen(open_regular(self.probe_path, follow=False), "rb")
        except (FileNotFoundError, RefusedLink, NotRegular):
            return
        with handle:
            handle.seek(self._probe_offset)
            while data := handle.read(PROBE_CHUNK_BYTES):
                self._probe_offset += len(data)
                self._probe_cache.release(handle.fileno(), self._probe_offset)
                self._take_probe(data)

    def _take_probe(self, data: bytes) -> None:
        lines = (self._probe_partial + data).split(b"\n")
        self._probe_partial = lines.pop()
        if len(self._probe_partial) > MAX_LINE_BYTES:  # no record is this long: dropped, not kept growing
            self._probe_partial = b""
        records = [record for line in lines if (record := decode(line)) is not None]
        for record in records:
            if record.get("ev") == PRERUN and record.get("task_id"):
                self._running[record["pid"]] = record["task_id"]
            elif record.get("ev") == POSTRUN and self._running.get(record.get("pid", -1)) == record.get("task_id"):
                del self._running[record["pid"]]
        with self.lock:
            self.obs.probe.extend(records)

    def drain_probe(self, retain: Callable[[list[ProbeLine]], list[ProbeLine]]) -> list[ProbeLine]:
        """Hand over the probe records that arrived since the last drain, keeping in the observations
        only those `retain(records)` returns: a load run keeps what kill attribution needs (children's
        events, tasks not yet ended), not a record per task ever run, which would grow with the run."""
        with self.lock:
            new = self.obs.probe[self._drained :]
            self.obs.probe = retain(self.obs.probe)
            self._drained = len(self.obs.probe)
        return new

    def snapshot(self) -> Observations:
        with self.lock:
            return Observations(
                kernel_kills=[self.kmsg.clock.map(k) for k in self.obs.kernel_kills] if self.kmsg else [],
                oom_events=list(self.obs.oom_events),
                exits=dict(self.obs.exits),
                probe=list(self.obs.probe),
                group_kills=list(self.obs.group_kills),
                group_replaced=list(self.obs.group_replaced),
                leaf_kills=list(self.obs.leaf_kills),
                leaf_of_pid=dict(self.obs.leaf_of_pid),
                named=dict(self.obs.named),
                stages={pid: dict(stages) for pid, stages in self.obs.stages.items()},
                oomlab_kills=dict(self.obs.oomlab_kills),
            )


def owner_of_leaf(directory: str) -> int | None:
    """leaf-<pid> -> pid (the pool child that made the leaf)."""
    name = os.path.basename(directory.rstrip("/"))
    tail = name[len(LEAF_PREFIX) :] if name.startswith(LEAF_PREFIX) else ""
    return int(tail) if tail.isdigit() else None


def leaf_owner(pid: int) -> int | None:
    """The pool child whose leaf memory cgroup process `pid` is in (None: not in a leaf)."""
    for line in (read_text(f"/proc/{pid}/cgroup") or "").splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "" or "memory" in controllers.split(","):
            owner = owner_of_leaf(path)
            if owner is not None:
                return owner
    return None


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None
