"""The fleet's events as they come off the stream, folded into what the record needs: the replicas'
hellos and clocks, every task's start, end or kill on the replica that ran it. Pure: fed event by event
(`take`), so it is tested on events without a Redis."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from oomlab.record import fleet
from oomlab.record.fleet import Clock, FleetKill, ReplicaRecord
from oomlab.workflows.fleet.schema import parse_event

EARLY_TASKS = 100_000  # task ids with events kept for a task not registered yet
EARLY_EVENTS = 20_000  # those events, at most, in all
EARLY_BYTES = 16 << 20  # and their size
LIMIT_MIN, LIMIT_MAX = 1 << 20, 1 << 50  # a hello's memory limit: 1 MiB to 1 PiB
OFFSET_MAX_S = 86_400.0  # a hello's clock offset from Redis TIME: less than a day
_HELLO_KEYS = ("pid", "limit_bytes", "concurrency", "clock_offset_s")  # a reconnect's hello repeats them

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
    early: dict[str, list[tuple[dict[str, Any], int]]] = field(
        default_factory=dict
    )  # for tasks not sent yet: (event, size)
    early_events: int = 0
    early_bytes: int = 0
    events: int = 0
    foreign: int = 0  # entries that are not an agent's event
    malformed: Counter[str] = field(default_factory=Counter)  # entries dropped for their shape, by why
    early_dropped: int = 0  # events for task ids not ours, beyond the cap on what is kept
    no_hello: int = 0  # events from a replica that never said hello: counted on no replica
    # pool children that started before their replica's hello (it comes at worker ready, after the pool
    # starts): counted on the replica when it says hello, on none if it never does
    children_before_hello: Counter[str] = field(default_factory=Counter)
    overruled: int = 0  # task events that would change a known outcome, or from another replica than its own
    conflicts: list[str] = field(default_factory=list)  # hellos refused: a name taken, a limit or clock implausible
    agents: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # each replica's (agent pid, host) at its hello
    hellos: dict[str, dict[str, Any]] = field(default_factory=dict)  # each replica's hello, the one that stands

    window_start: float | None = None  # the run's start (Redis clock): memory events before it are not the run's
    groups: dict[str, GroupSeen] = field(default_factory=dict)

    def take_entry(self, raw: Any) -> None:
        """One stream entry's event field, checked for shape (dropped and counted when it does not fit);
        never raises: a forged entry costs the run that entry, nothing more."""
        event, why = parse_event(raw)
        if event is None:
            self.malformed[why] += 1
            return
        try:
            self.take(event, len(raw))
        except Exception as exc:
            self.malformed[f"{type(exc).__name__} folding it"] += 1

    def notes(self) -> list[str]:
        """What the record says of the events it did not count."""
        notes = list(self.conflicts)
        if self.malformed:
            why = ", ".join(f"{n} {reason}" for reason, n in sorted(self.malformed.items()))
            notes.append(f"{sum(self.malformed.values())} stream entries were malformed and dropped ({why})")
        if self.early_dropped:
            notes.append(f"{self.early_dropped} events for task ids this run never sent were dropped (foreign)")
        if no_hello := self.no_hello + sum(self.children_before_hello.values()):
            notes.append(f"{no_hello} events from replicas that never said hello were counted on none (foreign)")
        if self.overruled:
            notes.append(
                f"{self.overruled} task events were ignored: they would change an outcome already known, or "
                f"came from another replica than the one that ran the task"
            )
        return notes

    def redis_time(self, event: dict[str, Any]) -> float:
        """The event's stamp on the Redis clock (its replica's offset; 0 before its hello)."""
        return float(event.get("wall") or 0.0) + self.offsets.get(str(event.get("replica")), 0.0)

    def sent(self, task: TaskState) -> None:
        self.tasks[task.id] = task
        for event, size in self.early.pop(task.id, []):
            self.early_events, self.early_bytes = self.early_events - 1, self.early_bytes - size
            self.take(event, size)

    def take(self, event: dict[str, Any], size: int = 0) -> None:
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
        replica = self.replicas.get(name)
        if replica is None or replica.ready_s is None:
            known = name in self.children_before_hello or len(self.children_before_hello) < EARLY_TASKS
            if ev == fleet.CHILD_START and known:
                self.children_before_hello[name] += 1
            else:
                self.no_hello += 1  # a replica that never said hello (or whose hello was refused)
            return
        if ev in (fleet.TASK_START, fleet.TASK_END) or (ev == fleet.KILL and event.get("id")):
            task_id = str(event.get("id"))
            if task_id not in self.tasks and not self._adopt(task_id, event):
                self.events -= 1
                size = size or 256
                full = task_id not in self.early and len(self.early) >= EARLY_TASKS
                if full or self.early_events >= EARLY_EVENTS or self.early_bytes + size > EARLY_BYTES:
                    self.early_dropped += 1
                else:  # sent by us a moment ago, or not ours
                    self.early.setdefault(task_id, []).append((event, size))
                    self.early_events, self.early_bytes = self.early_events + 1, self.early_bytes + size
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
        offset, trip, limit = event.get("clock_offset_s"), event.get("clock_round_trip_s"), event.get("limit_bytes")
        agent, concurrency = (event.get("agent_pid"), event.get("hostname")), event.get("concurrency")
        refused = None
        if limit is not None and not LIMIT_MIN <= limit <= LIMIT_MAX:
            refused = f"a memory limit of {limit} bytes is not plausible"
        elif concurrency is not None and not 1 <= concurrency <= 10_000:
            refused = f"a pool of {concurrency} processes is not plausible"
        elif isinstance(offset, int | float) and abs(offset) >= OFFSET_MAX_S:
            refused = f"a clock {offset:g} s from Redis TIME is not plausible"
        elif isinstance(trip, int | float) and not 0 <= trip < 60:
            refused = f"a clock round trip of {trip:g} s is not plausible"
        elif name in self.agents and self.agents[name] != agent:
            first = self.agents[name]
            refused = (
                f"the name is taken by the agent pid {first[0]} on {first[1]} (this one: pid {agent[0]} on "
                f"{agent[1]}); give each agent its own --replica NAME"
            )
        elif name in self.agents:
            first_hello = self.hellos[name]
            if all(event.get(key) == first_hello.get(key) for key in _HELLO_KEYS):
                return  # the same agent again, after a reconnect: the first hello stands
            refused = "a second hello with another worker, limit, pool or clock than its first"
        if refused:
            if len(self.conflicts) < 20:
                self.conflicts.append(f"a second or bad hello from replica {name!r} was refused: {refused}")
            return
        self.agents[name], self.hellos[name] = agent, event
        replica = self.replicas.setdefault(name, ReplicaRecord(name=name))
        if isinstance(offset, int | float) and isinstance(trip, int | float):
            replica.clock = Clock(offset_s=float(offset), round_trip_s=float(trip))
            self.offsets[name] = float(offset)
        replica.hostname, replica.pid = event.get("hostname"), event.get("pid")
        replica.limit_bytes, replica.concurrency = event.get("limit_bytes"), event.get("concurrency")
        if isinstance(queues := event.get("queues"), list):
            replica.queues = [str(queue) for queue in queues[:100]]
        replica.ready_s = self.redis_time(event)  # made relative by the record's assembly
        replica.child_starts += self.children_before_hello.pop(name, 0)
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
        if task.outcome is not None and task.how_known == "events" and not task.redelivered:
            self.overruled += 1  # a task already final does not start again
            return
        replica.tasks_run += 1
        task.replica, task.pid = replica.name, event.get("pid")
        task.started_wall, task.started_own = self.redis_time(event), float(event.get("wall") or 0.0)
        if task.outcome == "killed" and task.redelivered:
            task.outcome = None  # delivered again after its kill

    def _end(self, replica: ReplicaRecord, event: dict[str, Any]) -> None:
        task = self.tasks[str(event["id"])]
        known = task.outcome is not None and task.how_known == "events"
        if known or (task.replica is not None and task.replica != replica.name):
            self.overruled += 1  # a kill is not undone by a later end, nor a task ended by another replica
            return
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
        killed = task.outcome == "killed" and task.how_known == "events" and not task.redelivered
        if killed or (task.replica is not None and task.replica != replica.name):
            self.overruled += 1  # a task killed already, or a kill of a task another replica runs
            return
        task.replica, task.pid = replica.name, kill.pid
        task.ended_wall, task.outcome, task.redelivered = at, "killed", bool(event.get("redelivered"))
        task.peak_bytes, task.peak_exact, task.how_known = kill.peak_bytes, False, "events"
        replica.killed += 1
        if isinstance(kill.peak_bytes, int) and kill.peak_bytes > (replica.peak_bytes or 0):
            replica.peak_bytes, replica.peak_killed = kill.peak_bytes, True  # the killed task's, at its kill

    def open_tasks(self) -> list[str]:
        return [t.id for t in self.tasks.values() if t.outcome is None or (t.outcome == "killed" and t.redelivered)]
