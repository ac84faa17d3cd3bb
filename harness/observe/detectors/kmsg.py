"""/dev/kmsg: the kernel's own OOM-kill lines, with their timestamps.

A record's timestamp is the kernel's local_clock(), not CLOCK_MONOTONIC: the two drift apart with
uptime (NTP slews only the latter) and under virtualisation (28 ms seen under qemu TCG after 4 min).
It also drifts during a run (6 µs per second on a freshly booted host here). The reader measures the
offset as it opens and again as it closes, each time by writing a line of its own and reading back
its stamp, and maps each kill's stamp between the two (KernelClock).

Only kills in the run's own memory cgroup are kept: the `oom-kill:` line names the task's memcg,
and with memory.oom.group a `Tasks in X are going to be killed` line precedes the group's kills.
"""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from oomlab.observe.detectors.readable import readable

# how long before a kill's `Killed process` stamp it may be seen on the same clock: the kernel counts the
# kill (memory.events / oom_control's oom_kill, which the counter watch and the OOM notice read) before
# it sends SIGKILL and logs the line, and the stamp is one CPU's local_clock mapped onto CLOCK_MONOTONIC
# (seen: 16 µs early on the host, 0.8 ms early from a container)
SEEN_BEFORE_STAMP_S = 0.005

_KILLED = re.compile(r"Killed process (\d+) \(([^)]*)\).*?anon-rss:(\d+)kB, file-rss:(\d+)kB, shmem-rss:(\d+)kB")
# the victim's name (its comm: any 15 bytes a process chose, commas too) comes before its pid: the pid
# and uid are read from the line's end, the group up to the first ",task=" after it
_OOM_KILL = re.compile(r"oom-kill:.*?,task_memcg=(.*?),task=.*,pid=(\d+),uid=\d+\s*$")
_GROUP = re.compile(r"Tasks in (\S+) are going to be killed due to memory\.oom\.group set")


@dataclass(frozen=True)
class KernelKill:
    pid: int
    comm: str
    kernel_mono: float  # the kill's time on CLOCK_MONOTONIC (its stamp, until a KernelClock maps it)
    rss_bytes: int
    message: str
    seen_mono: float
    group_kill: bool
    kernel_stamp: float = 0.0  # the record's own stamp, on the kernel log's clock
    memcg: str | None = None  # the victim's own memory cgroup (a pool child's leaf, under the run's group)
    kinds: dict[str, int] | None = None  # anon / file / shmem RSS at the kill


@dataclass
class KernelClock:
    """The kernel log's clock onto CLOCK_MONOTONIC: offsets measured at moments (stamp, offset), and
    linear between the first and the last (the drift over a run is steady)."""

    points: list[tuple[float, float]] = field(default_factory=list)

    def to_mono(self, stamp: float) -> float:
        if not self.points:
            return stamp
        (first, offset), (last, last_offset) = self.points[0], self.points[-1]
        if last > first:
            offset += (last_offset - offset) * (stamp - first) / (last - first)
        return stamp - offset

    def map(self, kill: KernelKill) -> KernelKill:
        return replace(kill, kernel_mono=self.to_mono(kill.kernel_stamp))

    def describe(self) -> dict[str, float | None] | None:
        if not self.points:
            return None
        (first, offset), (last, last_offset) = self.points[0], self.points[-1]
        drift = (last_offset - offset) / (last - first) * 1e6 if last > first else None
        return {
            "offset_s": round(offset, 6),
            "end_offset_s": round(last_offset, 6),
            "drift_us_per_s": None if drift is None else round(drift, 3),
        }


class KmsgParser:
    """Turns kmsg records into KernelKills of one memcg (pure: fed text, no I/O)."""

    def __init__(self, memcg_suffix: str, known_pid: Callable[[int], bool] = lambda pid: False):
        self.memcg_suffix = memcg_suffix.rstrip("/")
        # the kernel rate-limits its OOM report, `oom-kill:` line included, but not the `Killed process`
        # line: under a burst of kills a victim may come with no memcg named, and is ours if its pid is
        self.known_pid = known_pid
        self._memcg_of_pid: dict[int, str] = {}
        self._group_memcg: str | None = None

    def _ours(self, memcg: str | None) -> bool:
        """The run's group or a leaf under it (leaf-<pid>, one per pool child)."""
        if not memcg:
            return False
        memcg = memcg.rstrip("/")
        return memcg.endswith(self.memcg_suffix) or f"{self.memcg_suffix}/" in memcg + "/"

    def feed(self, record: str, seen_mono: float) -> KernelKill | None:
        header, _, message = record.partition(";")
        fields = header.split(",")
        if len(fields) < 3:
            return None
        stamp = int(fields[2]) / 1e6
        message = message.split("\n", 1)[0]
        if match := _OOM_KILL.search(message):
            self._memcg_of_pid[int(match.group(2))] = match.group(1)
            return None
        if match := _GROUP.search(message):
            self._group_memcg = match.group(1)
            return None
        match = _KILLED.search(message)
        if not match:
            return None
        pid = int(match.group(1))
        own_line = self._memcg_of_pid.pop(pid, None)
        group = own_line is None and self._ours(self._group_memcg)
        if not (self._ours(own_line) or group or (own_line is None and self.known_pid(pid))):
            return None
        anon, file, shmem = (int(match.group(i)) * 1024 for i in (3, 4, 5))
        kinds = {"anon": anon, "file": file, "shmem": shmem}
        memcg = own_line or (self._group_memcg if group else None)
        return KernelKill(
            pid, match.group(2), stamp, anon + file + shmem, message.strip(), seen_mono, group, stamp, memcg, kinds
        )


class KmsgReader:
    """Non-blocking reader positioned at the end of the log when opened, its clock calibrated."""

    def __init__(self, memcg_suffix: str, known_pid: Callable[[int], bool] = lambda pid: False):
        self.parser = KmsgParser(memcg_suffix, known_pid)
        self.clock = KernelClock()
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        os.lseek(self.fd, 0, os.SEEK_END)
        self.calibrate()

    @classmethod
    def open(cls, memcg_suffix: str, known_pid: Callable[[int], bool] = lambda pid: False) -> KmsgReader | None:
        try:
            return cls(memcg_suffix, known_pid)
        except OSError:
            return None  # unreadable (dmesg_restrict, containers): the other detectors still work

    @property
    def clock_offset(self) -> float | None:
        """The kernel log's clock minus CLOCK_MONOTONIC as last measured (None: the log is not writable
        here, and stamps are taken as they are)."""
        return self.clock.points[-1][1] if self.clock.points else None

    def fileno(self) -> int:
        return self.fd

    def calibrate(self, timeout: float = 0.5) -> list[KernelKill]:
        """Measure the clock offset now; the kills read on the way to the marker are returned."""
        marker = f"oomlab[{os.getpid()}]: kernel log clock check {time.monotonic_ns()}"
        try:
            write_fd = os.open("/dev/kmsg", os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            return []
        try:
            before = time.monotonic()
            os.write(write_fd, f"<14>{marker}\n".encode())  # user.info
            after = time.monotonic()
        except OSError:
            return []  # refused
        finally:
            os.close(write_fd)
        kills: list[KernelKill] = []
        deadline = after + timeout  # a line dropped by the kernel's rate limit (printk_devkmsg) never comes
        while (left := deadline - time.monotonic()) > 0:
            readable([self.fd], left)
            for record in self._records():
                if record.partition(";")[2].startswith(marker):
                    stamp = int(record.split(",")[2]) / 1e6
                    self.clock.points.append((stamp, stamp - (before + after) / 2))
                    return kills
                if kill := self.parser.feed(record, time.monotonic()):
                    kills.append(kill)
        return kills

    def read(self, now: float) -> list[KernelKill]:
        return [kill for record in self._records() if (kill := self.parser.feed(record, now))]

    def _records(self) -> list[str]:
        records: list[str] = []
        while True:
            try:
                data = os.read(self.fd, 16384)
            except BlockingIOError:
                return records
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # records overwritten before we read them
                    continue
                return records
            if not data:
                return records
            records.append(data.decode("utf-8", "replace"))

    def close(self) -> None:
        os.close(self.fd)
