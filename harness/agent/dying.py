"""Whether a process is being killed, read from /proc before it is gone: the OOM killer counts the
kill and sends SIGKILL right after, so soon after the group's counter moves its victim has SIGKILL
pending (SigPnd or ShdPnd in /proc/PID/status) or, once it took it, is exiting (PF_EXITING in
/proc/PID/stat's flags) while the kernel tears its memory down, and only then turns zombie. Read at
the counter's very move, the signal may not be sent yet: the watcher looks again at its next read."""

from __future__ import annotations

_SIGKILL_BIT = 1 << (9 - 1)  # a signal mask's bit for signal N is N - 1
_PF_EXITING = 0x4


def is_dying(pid: int, zombie: bool = True) -> bool:
    """SIGKILL pending, exiting, or (with `zombie`) dead and not yet reaped; False when it is gone."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return False
    fields = stat[stat.rfind(b")") + 2 :].split()
    if len(fields) < 7:
        return False
    if fields[0] in (b"X", b"x") or (zombie and fields[0] == b"Z"):
        return True
    if fields[0] != b"Z" and int(fields[6]) & _PF_EXITING:
        return True
    status = _read(f"/proc/{pid}/status")
    for line in (status or b"").splitlines():
        if line.startswith((b"SigPnd:", b"ShdPnd:")) and int(line.split()[1], 16) & _SIGKILL_BIT:
            return True
    return False


def command_name(pid: int) -> str | None:
    comm = _read(f"/proc/{pid}/comm")
    return comm.decode(errors="replace").strip() if comm else None


def peak_rss(pid: int) -> int | None:
    """The process's peak RSS (VmHWM), in bytes."""
    for line in (_read(f"/proc/{pid}/status") or b"").splitlines():
        if line.startswith(b"VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None
