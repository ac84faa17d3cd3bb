"""What the agent knows of one kill, handed from the watcher to the repairer, the metrics and the alerts."""

from __future__ import annotations

from dataclasses import dataclass, field

_AT_LIMIT = 0.97  # a group this close to its limit at a kill was at it (the kernel reclaims a little first)


@dataclass
class Kill:
    pid: int | None  # None: a program gone before its kill was read (its leaf counted it)
    role: str  # "pool child" | "main" | "descendant" (a program a task started, inside the worker's group)
    cause: str  # "oom" (the cgroup counted a kill, or the kernel log named the pid) | "sigkill"
    seen_mono: float  # when the watcher saw the process gone, or named it before its exit (named_by)
    task_id: str | None = None
    task_name: str | None = None
    queue: str | None = None
    peak_bytes: int | None = None  # the task's own peak (its leaf's, else the victim's RSS); a program's or main's RSS
    limit_bytes: int | None = None
    group_bytes: int | None = None  # the worker's memory group's peak, read as the kill was handled
    program: str | None = None  # a descendant's command name, as the kernel logged it
    parent_pid: int | None = None  # a descendant's pool child (the process that ran its task)
    detection_s: float | None = None  # seen minus the kernel's kill time (only with the kernel log)
    named_by: str | None = None  # "kernel log" | "oom counter": named before its exit; None: seen at its exit
    redelivered: bool = False
    message: dict | None = None  # a redelivered task's message, for the dead-letter list
    outcome: list[str] = field(default_factory=list)  # what the repairer did: marked_failure, counted N, dead_lettered

    def describe(self) -> str:
        what = "killed by the kernel's OOM killer" if self.cause == "oom" else "killed by SIGKILL"
        task = f"task {self.task_name} ({self.task_id})" if self.task_id else None
        if self.role == "descendant":
            child = f"pool child pid {self.parent_pid}"
            started = (f"{task} in {child}" if task else f"a task unknown in {child}") if self.parent_pid else None
            pid = f"pid {self.pid}" if self.pid is not None else "pid unknown: gone before the kill was read"
            return (
                f"program {self.program or '?'} ({pid}), started by {started or 'no task known'}, was {what}"
                f"{self._group()}; the program's RSS at the kill {_mib(self.peak_bytes)}"
            )
        if self.role == "main":
            return f"the worker's main process (pid {self.pid}) was {what}{self._group()}; its RSS at the kill {_mib(self.peak_bytes)}"
        own = (
            _mib(self.peak_bytes)
            if self.peak_bytes is not None
            else "unknown (known under --memory only, without the kernel log)"
        )
        return f"{task or 'no task known'} in {self.role} pid {self.pid} was {what}{self._group()}; the task's own peak {own}"

    def _group(self) -> str:
        """Where the worker's group stood: a task far below the limit was killed because the group
        (every pool child and program together) reached it."""
        if self.limit_bytes is None:
            return ""
        if self.cause == "oom" and self.group_bytes is not None:
            where = "at its limit" if self.group_bytes >= _AT_LIMIT * self.limit_bytes else "below its limit"
            return (
                f" with its memory group {where} (group peak {_mib(self.group_bytes)}, limit {_mib(self.limit_bytes)})"
            )
        return f" (limit {_mib(self.limit_bytes)})"

    def as_json(self) -> dict:
        return {
            "task": self.task_name,
            "id": self.task_id,
            "pid": self.pid,
            "role": self.role,
            "cause": self.cause,
            "queue": self.queue,
            "peak_bytes": self.peak_bytes,
            "limit_bytes": self.limit_bytes,
            "group_bytes": self.group_bytes,
            "program": self.program,
            "parent_pid": self.parent_pid,
            "detection_s": self.detection_s,
            "named_by": self.named_by,
            "redelivered": self.redelivered,
            "repaired": list(self.outcome),
        }


def _mib(value: int | None) -> str:
    return "unknown" if value is None else f"{value / 2**20:.1f} MiB"
