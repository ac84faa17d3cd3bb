"""/dev/kmsg: the kernel's own OOM-kill lines, with their timestamps.

A record's timestamp is the kernel's local_clock(), not CLOCK_MONOTONIC: the two drift apart with
uptime (NTP slews only the latter) and under virtualisation (28 ms seen under qemu TCG after 4 min).
The reader measures the offset once, by writing a line of its own and reading back its stamp.

Only kills in the run's own memory cgroup are kept: the `oom-kill:` line names the task's memcg,
and with memory.oom.group a `Tasks in X are going to be killed` line precedes the group's kills.
"""
from __future__ import annotations

import errno
import os
import re
import select
import time
from dataclasses import dataclass
from typing import Callable

_KILLED = re.compile(
    r"Killed process (\d+) \(([^)]*)\).*?anon-rss:(\d+)kB, file-rss:(\d+)kB, shmem-rss:(\d+)kB"
)
_OOM_KILL = re.compile(r"oom-kill:.*task_memcg=([^,]*),task=[^,]*,pid=(\d+)")
_GROUP = re.compile(r"Tasks in (\S+) are going to be killed due to memory\.oom\.group set")


@dataclass(frozen=True)
class KernelKill:
    pid: int
    comm: str
    kernel_mono: float
    rss_bytes: int
    message: str
    seen_mono: float
    group_kill: bool


class KmsgParser:
    """Turns kmsg records into KernelKills of one memcg (pure: fed text, no I/O)."""

    def __init__(self, memcg_suffix: str, known_pid: Callable[[int], bool] = lambda pid: False,
                 clock_offset: float = 0.0):
        self.memcg_suffix = memcg_suffix.rstrip("/")
        self.clock_offset = clock_offset  # the kernel log's clock minus CLOCK_MONOTONIC, in seconds
        # the kernel rate-limits its OOM report, `oom-kill:` line included, but not the `Killed process`
        # line: under a burst of kills a victim may come with no memcg named, and is ours if its pid is
        self.known_pid = known_pid
        self._memcg_of_pid: dict[int, str] = {}
        self._group_memcg: str | None = None

    def _ours(self, memcg: str | None) -> bool:
        return bool(memcg) and memcg.rstrip("/").endswith(self.memcg_suffix)

    def feed(self, record: str, seen_mono: float) -> KernelKill | None:
        header, _, message = record.partition(";")
        fields = header.split(",")
        if len(fields) < 3:
            return None
        kernel_mono = int(fields[2]) / 1e6 - self.clock_offset
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
        rss = sum(int(match.group(i)) for i in (3, 4, 5)) * 1024
        return KernelKill(pid, match.group(2), kernel_mono, rss, message.strip(), seen_mono, group)


class KmsgReader:
    """Non-blocking reader positioned at the end of the log when opened, its clock calibrated."""

    def __init__(self, memcg_suffix: str, known_pid: Callable[[int], bool] = lambda pid: False):
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        os.lseek(self.fd, 0, os.SEEK_END)
        self.clock_offset = _calibrate(self.fd)  # None: the log is not writable here, taken as 0
        self.parser = KmsgParser(memcg_suffix, known_pid, self.clock_offset or 0.0)

    @classmethod
    def open(cls, memcg_suffix: str, known_pid: Callable[[int], bool] = lambda pid: False) -> "KmsgReader | None":
        try:
            return cls(memcg_suffix, known_pid)
        except OSError:
            return None  # unreadable (dmesg_restrict, containers): the other detectors still work

    def fileno(self) -> int:
        return self.fd

    def read(self, now: float) -> list[KernelKill]:
        kills = []
        while True:
            try:
                data = os.read(self.fd, 16384)
            except BlockingIOError:
                return kills
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # records overwritten before we read them
                    continue
                return kills
            if not data:
                return kills
            kill = self.parser.feed(data.decode("utf-8", "replace"), now)
            if kill:
                kills.append(kill)

    def close(self) -> None:
        os.close(self.fd)


def _calibrate(read_fd: int, timeout: float = 1.0) -> float | None:
    """The kernel log's clock minus CLOCK_MONOTONIC: a marker line's stamp against the write's midpoint."""
    marker = f"oomlab[{os.getpid()}]: kernel log clock check {time.monotonic_ns()}"
    try:
        write_fd = os.open("/dev/kmsg", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        before = time.monotonic()
        os.write(write_fd, f"<14>{marker}\n".encode())  # user.info
        after = time.monotonic()
    except OSError:
        return None  # dropped by the kernel's rate limit (printk_devkmsg) or refused
    finally:
        os.close(write_fd)
    deadline = after + timeout
    while (left := deadline - time.monotonic()) > 0:
        select.select([read_fd], [], [], left)
        try:
            record = os.read(read_fd, 16384).decode("utf-8", "replace")
        except BlockingIOError:
            continue
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                continue
            return None
        if record.partition(";")[2].startswith(marker):
            return int(record.split(",")[2]) / 1e6 - (before + after) / 2
    return None
