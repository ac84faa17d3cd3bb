"""What happened to each task's message after its OOM kills, judged only from what the run
recorded: the result backend's states over time, every execution the probe saw (with the broker's
redelivered flag, x-delivery-count and Celery's retry count), every kill, and where the broker had
the message once the workers were gone. Pure: no I/O, so it is tested on its own."""

from __future__ import annotations

from collections.abc import Sequence

from oomlab.record.delivery import DeliveryVerdict, KillDetection, Location, PoisonLoop, Redelivery
from oomlab.record.schema import CeleryEvent, KillRecord, TaskRecord

POISON_LOOP_KILLS = 3  # the same task id killed this many times is a loop, not bad luck

OUTCOMES = {
    "failed": "marked FAILURE (WorkerLostError) and never run again",
    "recovered": "redelivered after the kill and succeeded",
    "failed_after_retries": "redelivered, killed again each time, then marked FAILURE",
    "looping": "redelivered and killed again and again until the window closed",
    "dropped": "redelivered until the broker dropped the message; the state never became final",
    "lost": "the message is gone and nothing will run the task again",
    "awaiting_redelivery": "the message is still held by the broker, not yet delivered again",
    "not_killed": "no OOM kill hit the task",
}


def judge(
    task: TaskRecord, kills: list[KillRecord], location: Location | None, events: Sequence[CeleryEvent] = ()
) -> DeliveryVerdict:
    own_kills = sorted((k for k in kills if k.task_id == task.id), key=lambda k: k.kernel_time_mono)
    runs = sorted(task.executions, key=lambda run: run.started_mono)
    redeliveries = []
    for kill in own_kills:
        later = [run for run in runs if run.started_mono > kill.kernel_time_mono]
        if later:
            run = later[0]
            previous = [r for r in runs if r.started_mono < run.started_mono]
            retried = run.retries is not None and previous and (previous[-1].retries or 0) < run.retries
            how = "retry" if retried else "redelivered" if run.redelivered else "again"
            redeliveries.append(
                Redelivery(
                    kill.kernel_time_mono, run.started_mono, round(run.started_mono - kill.kernel_time_mono, 6), how
                )
            )
    where = location.where if location else "unknown"
    running_at_end = bool(runs) and runs[-1].finished_mono is None and not runs[-1].killed
    outcome = _outcome(task.state, len(runs), len(own_kills), where, running_at_end)
    loop = None
    if len(own_kills) >= POISON_LOOP_KILLS:
        span = own_kills[-1].kernel_time_mono - own_kills[0].kernel_time_mono
        loop = PoisonLoop(len(own_kills), round(60 * (len(own_kills) - 1) / span, 1) if span > 0 else None)
    return DeliveryVerdict(
        task_id=task.id,
        outcome=outcome,
        final_state=task.state,
        state_history=list(task.state_history),
        executions=len(runs),
        kills=len(own_kills),
        message=where,
        delivery_counts=[run.delivery_count for run in runs],
        redeliveries=redeliveries,
        stuck_in_started=task.state == "STARTED" and not running_at_end and where == "absent",
        poison_loop=loop,
        events=[(e.timestamp_mono, e.type) for e in events if e.uuid == task.id],
        first_redelivery_s=redeliveries[0].seconds if redeliveries else None,
    )


def _outcome(state: str | None, runs: int, kills: int, where: str, running_at_end: bool) -> str:
    if kills == 0:
        return "not_killed"
    if state == "SUCCESS":
        return "recovered"
    if state == "FAILURE":
        return "failed" if runs == 1 else "failed_after_retries"
    if running_at_end or (kills >= POISON_LOOP_KILLS and where in ("queued", "unacked")):
        return "looping"
    if where in ("queued", "unacked"):
        return "awaiting_redelivery"
    if runs > 1:
        return "dropped"
    return "lost"


def detections(kills: list[KillRecord]) -> list[KillDetection]:
    """Every kill of the run (the task's pool child, and the main process in a whole-worker kill)."""
    return [
        KillDetection(
            k.pid,
            k.role,
            k.kernel_time_mono,
            k.detected.get("oomlab"),
            k.detected.get("celery_pool_noticed"),
            k.detected.get("celery_worker_lost"),
            k.detected.get("celery_heartbeat_expiry"),
        )
        for k in kills
    ]


def flower_worker_online(events: list[CeleryEvent], until: float | None) -> int | None:
    """What Flower's `flower_worker_online` gauge shows when the window closes (before oomlab stops
    the worker): set to 1 on worker-online and each heartbeat, and to 0 only on worker-offline,
    which a SIGKILLed worker never sends."""
    last = [
        e
        for e in events
        if e.type in ("worker-online", "worker-heartbeat", "worker-offline")
        and (until is None or e.received_mono <= until)
    ]
    return None if not last else int(last[-1].type != "worker-offline")
