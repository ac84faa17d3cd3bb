"""One paragraph per distinct outcome the lab measured: why it happens and the setting that avoids
it. The mechanism is Celery's and the broker's; the figures quoted come from the cells themselves."""

from __future__ import annotations

from statistics import median

from oomlab.config.durations import format_seconds
from oomlab.record.delivery import DeliveryVerdict
from oomlab.workflows.lab.delivery import CellResult

WHY = {
    "failed": (
        "The message was settled (acked at the start by default acks, or acked on failure with acks_late "
        "and no reject): Celery's main process saw the child die and stored FAILURE with WorkerLostError. "
        "Nothing runs it again.",
        "task_acks_late=True with task_reject_on_worker_lost=True (and a delivery limit), or "
        "task_retry_on_worker_lost=True with max_retries, to run it again after a one-off OOM.",
    ),
    "recovered": (
        "The message came back after the kill (rejected with requeue, retried as a new message, or "
        "returned by the broker when the worker's connection died) and the next delivery succeeded.",
        "Nothing to avoid for a one-off OOM; bound the same settings for a task that OOMs every time.",
    ),
    "failed_after_retries": (
        "task_retry_on_worker_lost sent the task again after each kill until max_retries ran "
        "out, then stored FAILURE: a deterministic OOM is bounded and ends visible.",
        "Keep max_retries small, and fix the task's memory (chunking, a separate queue with a larger limit).",
    ),
    "looping": (
        "A poison loop: the same task id is delivered, OOM-killed and delivered again, taking a pool slot "
        "(or the whole worker) each time, with no FAILURE ever stored.",
        "A quorum queue with x-delivery-limit, or task_retry_on_worker_lost=True with max_retries, instead "
        "of unbounded task_reject_on_worker_lost; fix the task's memory.",
    ),
    "dropped": (
        "The broker stopped the loop: the quorum queue dropped the message once x-delivery-limit was "
        "exceeded. Celery was never told, so the state stays at its last value (STARTED) for ever.",
        "Give the queue a dead-letter exchange (x-dead-letter-exchange) to keep and inspect the message, "
        "and alert on tasks older than their time limit in STARTED.",
    ),
    "lost": (
        "The whole worker died with the message already acked (default acks) or never returned: no process "
        "was left to store a failure, so the task sits in STARTED (task_track_started) for ever.",
        "task_acks_late=True so the broker keeps the message until the task finishes; on Redis, a "
        "visibility_timeout short enough to wait for.",
    ),
    "awaiting_redelivery": (
        "The message is still in the broker, unacknowledged, when the window closed: on Redis, "
        "kombu restores it only once visibility_timeout has passed and its restore sweep runs "
        "(every unacked_restore_interval x unacked_restore_throttle seconds).",
        "A shorter visibility_timeout and unacked_restore_throttle=1 on Redis (longer than your "
        "longest task), or RabbitMQ, which requeues as soon as the connection drops.",
    ),
    "not_killed": (
        "No OOM kill hit the task, so this cell says nothing about delivery.",
        "Check that the memory limit is below what the task allocates.",
    ),
}


def explanations(results: list[CellResult]) -> list[tuple[str, int, str, str, str]]:
    """(outcome, cells, why, avoid, measured) for each outcome seen, in the order of WHY."""
    by_outcome: dict[str, list[DeliveryVerdict]] = {}
    for result in results:
        for verdict in result.delivery.verdicts if result.delivery else []:
            by_outcome.setdefault(verdict.outcome, []).append(verdict)
    rows = []
    for outcome, (why, avoid) in WHY.items():
        verdicts = by_outcome.get(outcome)
        if verdicts:
            rows.append((outcome, len(verdicts), why, avoid, _measured(verdicts)))
    return rows


def _measured(verdicts: list[DeliveryVerdict]) -> str:
    runs = [v.executions for v in verdicts]
    redelivery = [v.first_redelivery_s for v in verdicts if v.first_redelivery_s is not None]
    text = f"runs per task {min(runs)}-{max(runs)}" if min(runs) != max(runs) else f"runs per task {runs[0]}"
    if redelivery:
        text += (
            f"; first redelivery {format_seconds(median(redelivery))} after the kill (median, "
            f"{format_seconds(min(redelivery))} to {format_seconds(max(redelivery))})"
        )
    return text
