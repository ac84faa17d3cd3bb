"""Every OOM kill with its evidence: the kernel's kill time, the victim's role and task, and how
long each detector took to notice (seconds after the kernel's kill). Pure: reads observations only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from celery.events.state import heartbeat_expires
from oomlab.observe.detectors.kmsg import KernelKill
from oomlab.observe.executions import child_exit_codes, running_in
from oomlab.observe.monitor import Observations, owner_of_leaf
from oomlab.observe.sampler import PidStats
from oomlab.record.schema import CeleryEvent, Execution, KillCause, KillRecord, Role

_INFER_WINDOW = 2.0  # s after an OOM notification within which an exit is taken as its victim
# how long before a kill's kernel stamp the group's OOM notice may come and still be the notice of that
# kill: the kernel counts the kill (the notice) before it sends SIGKILL and stamps `Killed process`, and
# the CPU doing it can be preempted in between (13.6 ms seen in the emulated cgroup v2 VM under load)
OOM_NOTICE_LEAD_S = 0.1


@dataclass
class KillContext:
    main_pids: frozenset[int]  # every worker main process of the run (one per restart)
    ready_mono: float | None
    executions: dict[str, list[Execution]]
    names: dict[str, str]
    pid_stats: dict[int, PidStats]
    celery_events: list[CeleryEvent]
    pool_noticed: dict[int, float] = field(default_factory=dict)  # child pid -> when Celery's main logged its death
    pool_children: frozenset[int] = frozenset()  # pids that ran the probe's child_init (pool processes)


Victim = tuple[int, float, str, KillCause, KernelKill | None]


def _victims(obs: Observations) -> list[Victim]:
    """(pid, kernel time, time source, cause, kmsg kill or None), kmsg first, then inferred."""
    victims: list[Victim] = []
    known: set[int] = set()
    for k in obs.kernel_kills:  # the first line per pid: memory.oom.group's walk names the chosen victim again
        if k.pid not in known:
            victims.append((k.pid, k.kernel_mono, "kmsg", "oom_group" if k.group_kill else "oom", k))
            known.add(k.pid)
    counted = max((count for _, count in obs.oom_events), default=0)
    missing = counted - len(obs.kernel_kills)
    previous = 0
    clean = set(child_exit_codes(obs.probe))  # exited on their own (recycled, shut down): never a victim
    for seen, count in obs.oom_events:  # no kernel line (kmsg unreadable or overrun): infer from exits
        delta, previous = count - previous, max(previous, count)
        # the exits nearest the counter's rise: in a poison loop other processes come and go in the window
        nearest = sorted(
            (
                (pid, exited)
                for pid, exited in obs.exits.items()
                if pid not in known and pid not in clean and seen - 0.05 <= exited <= seen + _INFER_WINDOW
            ),
            key=lambda item: abs(item[1] - seen),
        )
        for pid, exited in nearest[: max(0, min(delta, missing))]:
            # killed no later than the first sign of it: its exit can be seen in the counter's round
            victims.append((pid, min(seen, exited), "oom_event", "oom", None))
            known.add(pid)
            missing -= 1
    for sent, pids in obs.group_kills:  # v1 emulation of memory.oom.group: oomlab killed the rest
        for pid in pids:
            if pid not in known:  # its own kill's time: the moment oomlab's SIGKILL went to it
                victims.append((pid, obs.oomlab_kills.get(pid, sent), "oomlab_group_kill", "oom_group", None))
                known.add(pid)
    return sorted(victims, key=lambda v: v[1])


def _celery_notice(events: list[CeleryEvent], task_id: str | None, after: float) -> CeleryEvent | None:
    for event in events:
        evidence = f"{event.fields.get('exception', '')} {event.fields.get('traceback', '')}"
        lost = event.type == "task-failed" and event.uuid == task_id and "WorkerLostError" in evidence
        if lost and (event.timestamp_mono or event.received_mono) >= after - 0.5:
            return event
    return None


def _heartbeat_expiry(events: list[CeleryEvent], before: float) -> float | None:
    """When celery.events.state would call the worker dead: its expiry rule on the last heartbeat."""
    beats = [
        e
        for e in events
        if e.type in ("worker-online", "worker-heartbeat") and e.timestamp_mono and e.timestamp_mono <= before
    ]
    if not beats:
        return None
    last = beats[-1]
    freq = float(last.fields.get("freq") or 2.0)
    mono, wall = last.timestamp_mono, last.timestamp_wall
    assert mono is not None and wall is not None, "a heartbeat kept above has both clocks"
    expires: float = heartbeat_expires(wall, freq)  # Celery's, untyped
    return mono + (expires - wall)


def _owner(pid: int, kernel_time: float, kernel_kill: KernelKill | None, obs: Observations) -> int | None:
    """The pool child whose leaf a killed process was in: the kernel's own memcg for the victim,
    else the leaf it was seen in, else the leaf whose kill counter rose at that moment (v1)."""
    memcg = getattr(kernel_kill, "memcg", None)
    if memcg and (owner := owner_of_leaf(memcg)) is not None:
        return owner
    if pid in obs.leaf_of_pid:
        return obs.leaf_of_pid[pid]
    rises = [
        (abs(seen - kernel_time), owner) for seen, owner in obs.leaf_kills if abs(seen - kernel_time) < _INFER_WINDOW
    ]
    return min(rises)[1] if rises else None


def _role(pid: int, owner: int | None, ctx: KillContext) -> Role:
    """main | child (a pool process) | descendant (a process a task started: a program, a helper)."""
    if pid in ctx.main_pids:
        return "main"
    if owner is not None and owner != pid and pid not in ctx.pool_children:
        return "descendant"
    return "child"


def attribute_kills(obs: Observations, ctx: KillContext) -> list[KillRecord]:
    kills = []
    for pid, kernel_time, source, cause, kernel_kill in _victims(obs):
        owner = _owner(pid, kernel_time, kernel_kill, obs)
        role = _role(pid, owner, ctx)
        running = running_in(ctx.executions, owner if role == "descendant" and owner else pid, kernel_time)
        task_id = running[0] if running else None
        stats = ctx.pid_stats.get(pid)
        seen: dict[str, float] = {}
        if kernel_kill is not None:
            seen["kmsg"] = kernel_kill.seen_mono
        notices = [t for t, _ in obs.oom_events if t >= kernel_time - OOM_NOTICE_LEAD_S]
        if notices and cause == "oom":
            seen["oom_event"] = notices[0]
        if pid in obs.exits:
            seen["pidfd"] = obs.exits[pid]
        if stats and stats.gone_mono:
            seen["sampler"] = stats.gone_mono
        named = obs.named.get(pid)
        if named is not None and not (named[0] >= kernel_time and named[1] == task_id):
            named = None  # named before this kill (an earlier one of the same pid) or without its task
        if named is not None:
            seen["oomlab"] = named[0]  # the monitor had the pid and its task (named before anything else was read)
        elif "kmsg" in seen or "pidfd" in seen:
            seen["oomlab"] = min(seen[k] for k in ("kmsg", "pidfd") if k in seen)
        if notice := _celery_notice(ctx.celery_events, task_id, kernel_time):
            seen["celery_worker_lost"] = notice.timestamp_mono or notice.received_mono
            seen["celery_event_received"] = notice.received_mono
        if pid in ctx.pool_noticed:
            seen["celery_pool_noticed"] = ctx.pool_noticed[pid]
        if pid in ctx.main_pids and (expiry := _heartbeat_expiry(ctx.celery_events, kernel_time)):
            seen["celery_heartbeat_expiry"] = expiry
        kills.append(
            KillRecord(
                pid=pid,
                role=role,
                task_id=task_id,
                task_name=ctx.names.get(task_id) if task_id else None,
                signal="SIGKILL",
                cause=cause,
                kernel_time_mono=kernel_time,
                kernel_time_source=source,
                detected={name: round(t - kernel_time, 6) for name, t in seen.items()},
                detected_mono=seen,
                rss_bytes=kernel_kill.rss_bytes if kernel_kill else (stats.last_rss if stats else None),
                during_startup=ctx.ready_mono is None or kernel_time < ctx.ready_mono,
                kernel_message=kernel_kill.message if kernel_kill else None,
                command=(stats.command if stats and stats.command else None)
                or (kernel_kill.comm if kernel_kill else None),
                owner_pid=owner if role == "descendant" else None,
                kinds=kernel_kill.kinds if kernel_kill else None,
                stages={name: round(t - kernel_time, 6) for name, t in obs.stages.get(pid, {}).items()}
                if named is not None
                else {},
            )
        )
    return kills
