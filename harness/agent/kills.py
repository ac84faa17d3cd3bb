"""What the agent knows of one kill, handed from the watcher to the repairer, the metrics and the alerts."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Kill:
    pid: int
    role: str  # "pool child" | "main"
    cause: str  # "oom" (the cgroup counted a kill, or the kernel log named the pid) | "sigkill"
    seen_mono: float  # when the watcher saw the process gone
    task_id: str | None = None
    task_name: str | None = None
    queue: str | None = None
    peak_bytes: int | None = None
    limit_bytes: int | None = None
    detection_s: float | None = None  # seen minus the kernel's kill time (only with the kernel log)
    redelivered: bool = False
    message: dict | None = None  # a redelivered task's message, for the dead-letter list
    outcome: list[str] = field(default_factory=list)  # what the repairer did: marked_failure, counted N, dead_lettered

    def describe(self) -> str:
        what = "killed by the kernel's OOM killer" if self.cause == "oom" else "killed by SIGKILL"
        peak = _mib(self.peak_bytes)
        limit = _mib(self.limit_bytes)
        return f"task {self.task_name} ({self.task_id}) in {self.role} pid {self.pid} was {what}: peak {peak}, limit {limit}"

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
            "detection_s": self.detection_s,
            "redelivered": self.redelivered,
            "repaired": list(self.outcome),
        }


def _mib(value: int | None) -> str:
    return "unknown" if value is None else f"{value / 2**20:.1f} MiB"
