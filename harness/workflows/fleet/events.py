"""The fleet's events as they come off the stream, folded into what the record needs: the replicas'
hellos and clocks, every task's start, end or kill on the replica that ran it. Pure: fed event by event
(`take`), so it is tested on events without a Redis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from oomlab.record import fleet
from oomlab.record.fleet import Clock, FleetKill, ReplicaRecord

_LINKS = ("parent_id", "root_id", "group_id")  # Celery's, on a task_start


@dataclass
class TaskState:
    id: str
    name: str
    label: str
    sent_wall: float  # on the Redis clock
    replica: str | None = None
    pid: int | None = None
    started_wall: float | None = None  # Redis clock
    started_own: float | None = None  # the replica's own clock (runtime)
    ended_wall: float | None = None
    runtime_s: float | None = None
    outcome: str | None = None  # succeeded | failed | killed, None while open
    state: str | None = None
    peak_bytes: int | None = None
    peak_exact: bool = False
    redelivered: bool = False  # a kill that Celery will deliver again: not final
    how_known: str = "events"
    sent_by: str = "run"  # "worker": a task of this run sent it (found by its task_start's parent or root)
    parent_id: str | None = None
    root_id: str | None = None
    group_id: str | None = None


@dataclass
class GroupSeen:
    """A replica's memory group as its events in this run showed it."""

    peak_before: int | None = None  # the lifetime peak its hello carried (the run's start, or the replica's)
    peak_after: int | None = None  # the largest lifetime peak its memory events carried
    sampled: int | None = None  # the largest usage its memory events and kills carried


@dataclass
class Fold:
    replicas: dict[str, ReplicaRecord] = field(default_factory=dict)
    tasks: dict[str, TaskState] = field(default_factory=dict)
    kills: list[FleetKill] = field(default_factory=list)
    offsets: dict[str, float] = field(default_factory=dict)
    early: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # events for tasks not sent yet
    events: int = 0
    foreign: int = 0  # entries that are not an agent's event
    window_start: float | None = None  # the run's start (Redis clock): memory events before it are not the run's
    groups: dict[str, GroupSeen] = field(default_factory=dict)

    def redis_time(self, event: dict[str, Any]) -> float:
        """The event's stamp on the Redis clock (its replica's offset; 0 before its hello)."""
        return float(event.get("wall") or 0.0) + self.offsets.get(str(event.get("replica")), 0.0)

    def sent(self, task: TaskState) -> None:
        self.tasks[task.id] = task
        for event in self.early.pop(task.id, []):
            self.take(event)

    def take(self, event: dict[str, Any]) -> None:
        self.events += 1
        ev, name = event.get("ev"), str(event.get("replica") or "?")
        if not isinstance(ev, str):
            self.foreign += 1
            return
        if ev == fleet.RUN_START:
            return
        if ev == fleet.WORKER_START:
            self._hello(name, event)
            return
        replica = self.replicas.get(name) or self.replicas.setdefault(name, ReplicaRecord(name=name))
        if ev in (fleet.TASK_START, fleet.TASK_END) or (ev == fleet.KILL and event.get("id")):
            task_id = str(event.get("id"))
            if task_id not in self.tasks and not self._adopt(task_id, event):
                if len(self.early) < 100_000:
                    self.early.setdefault(task_id, []).append(event)  # sent by us a moment ago, or not ours
                self.events -= 1
                return
        if ev == fleet.TASK_START:
            self._start(replica, event)
        elif ev == fleet.TASK_END:
            self._end(replica, event)
        elif ev == fleet.KILL:
            self._kill(replica, event)
        elif ev == fleet.CHILD_START:
            replica.child_starts += 1
        elif ev == fleet.CHILD_EXIT:
            replica.child_exits += 1
        elif ev == fleet.MEMORY:
            self._memory(replica, event)
        elif ev == fleet.WORKER_EXIT:
            replica.exit_code = event.get("code")
            replica.events_dropped = event.get("dropped")

    def _adopt(self, task_id: str, event: dict[str, Any]) -> bool:
        """A task this run's controller did not send, started by one of its tasks (its parent or root is
        a task of the run): a task of the run too, sent by the worker (a chord's part, a callback)."""
        if event.get("ev") != fleet.TASK_START:
            return False
        parent, root, group = (event.get(k) if isinstance(event.get(k), str) else None for k in _LINKS)
        sender = self.tasks.get(parent or "") or self.tasks.get(root or "")
        if sender is None:
            return False
        name = str(event.get("name") or "?")
        task = TaskState(task_id, name, f"sent by {sender.name}", self.redis_time(event), sent_by="worker")
        task.parent_id, task.root_id, task.group_id = parent, root, group
        self.tasks[task_id] = task
        return True

    def _hello(self, name: str, event: dict[str, Any]) -> None:
        replica = self.replicas.setdefault(name, ReplicaRecord(name=name))
        offset, trip = event.get("clock_offset_s"), event.get("clock_round_trip_s")
        if isinstance(offset, int | float) and isinstance(trip, int | float):
            replica.clock = Clock(offset_s=float(offset), round_trip_s=float(trip))
            self.offsets[name] = float(offset)
        replica.hostname, replica.pid = event.get("hostname"), event.get("pid")
        replica.limit_bytes, replica.concurrency = event.get("limit_bytes"), event.get("concurrency")
        if isinstance(queues := event.get("queues"), list):
            replica.queues = [str(queue) for queue in queues[:100]]
        replica.ready_s = self.redis_time(event)  # made relative by the record's assembly
        if isinstance(peak := event.get("group_peak_bytes"), int):
            self.groups[name] = GroupSeen(peak_before=peak)  # a new hello: a new baseline

    def _memory(self, replica: ReplicaRecord, event: dict[str, Any]) -> None:
        if self.window_start is not None and self.redis_time(event) < self.window_start:
            return  # before the run
        seen = self.groups.setdefault(replica.name, GroupSeen())
        if isinstance(peak := event.get("peak_bytes"), int):
            seen.peak_after = max(seen.peak_after or 0, peak)
        if isinstance(usage := event.get("usage_bytes"), int):
            seen.sampled = max(seen.sampled or 0, usage)

    def group_peaks(self) -> None:
        """Each replica's group peak in this run, and what it covers (ReplicaRecord.group_peak_covers)."""
        for name, replica in self.replicas.items():
            seen = self.groups.get(name, GroupSeen())
            before, after = seen.peak_before, seen.peak_after
            if before is not None and after is not None and after > before:
                replica.group_peak_bytes, replica.group_peak_covers = after, "run"  # it rose in the run: the run's
            elif seen.sampled is not None:
                replica.group_peak_bytes, replica.group_peak_covers = seen.sampled, "samples"
            else:
                replica.group_peak_bytes, replica.group_peak_covers = None, None  # only a peak from before
            if (
                replica.group_peak_bytes is not None
                and replica.peak_bytes
                and replica.group_peak_bytes < replica.peak_bytes
            ):
                replica.group_peak_bytes, replica.group_peak_covers = replica.peak_bytes, "largest task"

    def _start(self, replica: ReplicaRecord, event: dict[str, Any]) -> None:
        task = self.tasks[str(event["id"])]
        replica.tasks_run += 1
        task.replica, task.pid = replica.name, event.get("pid")
        task.started_wall, task.started_own = self.redis_time(event), float(event.get("wall") or 0.0)
        if task.outcome == "killed" and task.redelivered:
            task.outcome = None  # delivered again after its kill

    def _end(self, replica: ReplicaRecord, event: dict[str, Any]) -> None:
        task = self.tasks[str(event["id"])]
        task.replica, task.pid = replica.name, event.get("pid")
        task.ended_wall = self.redis_time(event)
        if task.started_own is not None:
            task.runtime_s = max(0.0, float(event.get("wall") or 0.0) - task.started_own)
        exact = bool(event.get("tree_peak_exact"))
        task.peak_bytes = event.get("tree_peak") if exact else event.get("peak_rss")
        task.peak_exact = exact and task.peak_bytes is not None
        task.state, task.how_known = event.get("state"), "events"  # the event wins over the backend's word
        task.outcome = "succeeded" if task.state == "SUCCESS" else "failed"
        if task.outcome == "succeeded":
            replica.succeeded += 1
        else:
            replica.failed += 1
        if task.peak_bytes is not None and task.peak_bytes > (replica.peak_bytes or 0):
            replica.peak_bytes, replica.peak_killed = task.peak_bytes, False

    def _kill(self, replica: ReplicaRecord, event: dict[str, Any]) -> None:
        seen = self.redis_time(event)
        detection = event.get("detection_s")
        at = seen - detection if isinstance(detection, int | float) else seen
        kill = FleetKill(
            replica=replica.name,
            pid=int(event.get("pid") or 0),
            role=str(event.get("role") or "?"),
            cause=str(event.get("cause") or "?"),
            at_s=at,  # made relative by the record's assembly
            detection_s=detection if isinstance(detection, int | float) else None,
            task_id=event.get("id"),
            task_name=event.get("task"),
            peak_bytes=event.get("peak_bytes"),
            limit_bytes=event.get("limit_bytes"),
            group_bytes=event.get("group_bytes"),
        )
        self.kills.append(kill)
        replica.kills += 1
        if isinstance(kill.group_bytes, int):
            group = self.groups.setdefault(replica.name, GroupSeen())
            group.sampled = max(group.sampled or 0, kill.group_bytes)
        task = self.tasks.get(str(kill.task_id)) if kill.task_id else None
        ended = task is not None and task.outcome in ("succeeded", "failed") and task.how_known == "events"
        if task is None or kill.role == "descendant" or ended:
            return  # a program a task started: the task goes on and ends by itself
        task.replica, task.pid = replica.name, kill.pid
        task.ended_wall, task.outcome, task.redelivered = at, "killed", bool(event.get("redelivered"))
        task.peak_bytes, task.peak_exact, task.how_known = kill.peak_bytes, False, "events"
        replica.killed += 1
        if isinstance(kill.peak_bytes, int) and kill.peak_bytes > (replica.peak_bytes or 0):
            replica.peak_bytes, replica.peak_killed = kill.peak_bytes, True  # the killed task's, at its kill

    def open_tasks(self) -> list[str]:
        return [t.id for t in self.tasks.values() if t.outcome is None or (t.outcome == "killed" and t.redelivered)]
