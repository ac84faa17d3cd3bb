"""Cheap, exception-free reads of /proc for one process; shared by the probe and the sampler.

Each read is a single os.read of a small file: the sampler calls these at 50+ Hz per process.
"""

from __future__ import annotations

import os

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _read(path: str, size: int = 4096) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)


class OpenFiles:
    """Keeps /proc and cgroup files open and re-reads them with pread: a tick costs one syscall
    per file instead of open+read+close (these files are regenerated on every read at offset 0)."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}

    def read(self, path: str, size: int = 4096) -> bytes | None:
        fd = self._fds.get(path)
        if fd is None:
            try:
                fd = self._fds[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None
        try:
            return os.pread(fd, size, 0)
        except OSError:
            self.forget(path)
            return None

    def forget(self, path: str) -> None:
        fd = self._fds.pop(path, None)
        if fd is not None:
            os.close(fd)

    def forget_pid(self, pid: int) -> None:
        for path in [p for p in self._fds if p.startswith(f"/proc/{pid}/")]:
            self.forget(path)

    def close(self) -> None:
        for path in list(self._fds):
            self.forget(path)


class OwnFiles:
    """This process's /proc files kept open (re-read with pread) and its clear_refs open for writing:
    a probe reads them at every task's start and end, where open+close was most of its cost. `mine()`
    re-opens them after a fork, since each path names the pid that opened it."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.files = OpenFiles()
        self.clear_refs: int | None = None

    def mine(self) -> OwnFiles:
        """These files, opened for the calling process (once per process: the parent's are closed)."""
        if self.pid != os.getpid():
            self.files.close()  # the parent's, inherited: this process's copies only
            if self.clear_refs is not None:
                os.close(self.clear_refs)
            self.pid, self.files = os.getpid(), OpenFiles()
            try:
                self.clear_refs = os.open(f"/proc/{self.pid}/clear_refs", os.O_WRONLY | os.O_CLOEXEC)
            except OSError:
                self.clear_refs = None
        return self

    def rss(self) -> int | None:
        return parse_statm_rss(self.files.read(f"/proc/{self.pid}/statm", 128))

    def status_raw(self) -> bytes | None:
        return self.files.read(f"/proc/{self.pid}/status", 8192)

    def status(self, names: tuple[str, ...]) -> dict[str, int]:
        return parse_status_fields(self.status_raw(), names)

    def reset_peak(self) -> bool:
        """VmHWM back to the current RSS (clear_refs 5)."""
        return reset_peak_through(self.clear_refs)


def parse_statm_rss(data: bytes | None) -> int | None:
    fields = data.split() if data else []
    return int(fields[1]) * PAGE_SIZE if len(fields) > 1 else None


def parse_smaps_rollup(data: bytes | None) -> tuple[int, int] | None:
    """(PSS, USS) in bytes; USS is private clean + private dirty."""
    if not data:
        return None
    values: dict[str, int] = {}
    for line in data.decode("ascii", "replace").splitlines():
        key, _, rest = line.partition(":")
        if key in ("Pss", "Private_Clean", "Private_Dirty"):
            values[key] = int(rest.split()[0]) * 1024
    if "Pss" not in values:
        return None
    return values["Pss"], values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)


def pss_uss_bytes(pid: int | str = "self") -> tuple[int, int] | None:
    """(PSS, USS) of one process, read once from smaps_rollup."""
    return parse_smaps_rollup(_read(f"/proc/{pid}/smaps_rollup", 8192))


def oom_score_adj(pid: int | str = "self") -> int | None:
    """The process's oom_score_adj (-1000 to 1000; 0 unless something changed it)."""
    data = _read(f"/proc/{pid}/oom_score_adj", 16)
    try:
        return int(data) if data else None
    except ValueError:
        return None


def rss_bytes(pid: int | str = "self") -> int | None:
    """Resident set size from /proc/PID/statm (one short read, no parsing of status)."""
    return parse_statm_rss(_read(f"/proc/{pid}/statm", 128))


def status_fields(pid: int | str = "self", names: tuple[str, ...] = ("VmHWM", "VmRSS")) -> dict[str, int]:
    """Selected kB fields of /proc/PID/status, in bytes."""
    return parse_status_fields(_read(f"/proc/{pid}/status", 8192), names)


def parse_status_fields(data: bytes | None, names: tuple[str, ...]) -> dict[str, int]:
    found: dict[str, int] = {}
    for name in names:
        start = data.find(name.encode() + b":") if data else -1
        if data and start >= 0:
            end = data.find(b"\n", start)
            found[name] = int(data[start + len(name) + 1 : end].split()[0]) * 1024
    return found


def command_line(pid: int | str) -> str:
    data = _read(f"/proc/{pid}/cmdline", 4096)
    return data.replace(b"\0", b" ").decode("utf-8", "replace").strip() if data else ""


def reset_peak(pid: int | str = "self") -> bool:
    """Reset VmHWM to the current RSS (writing 5 to clear_refs, Linux 4.0+)."""
    try:
        fd = os.open(f"/proc/{pid}/clear_refs", os.O_WRONLY)
    except OSError:
        return False
    try:
        return reset_peak_through(fd)
    finally:
        os.close(fd)


def reset_peak_through(clear_refs: int | None) -> bool:
    """Reset VmHWM through an open clear_refs (kept open by a probe that resets at every task)."""
    if clear_refs is None:
        return False
    try:
        os.write(clear_refs, b"5")
        return True
    except OSError:
        return False


def start_time_ticks(pid: int) -> int | None:
    """Process start time (clock ticks since boot): tells a live pid from a recycled one."""
    data = _read(f"/proc/{pid}/stat", 1024)
    if not data:
        return None
    after_comm = data[data.rfind(b")") + 2 :].split()
    return int(after_comm[19]) if len(after_comm) > 19 else None


def alive_since(pid: int) -> int | None:
    """Start time of a live process; None when it is gone or a zombie (dead, not yet reaped)."""
    data = _read(f"/proc/{pid}/stat", 1024)
    if not data:
        return None
    after_comm = data[data.rfind(b")") + 2 :].split()
    if len(after_comm) < 20 or after_comm[0] in (b"Z", b"X"):
        return None
    return int(after_comm[19])
