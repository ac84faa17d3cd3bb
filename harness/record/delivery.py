"""The delivery lab's evidence in run.json's `delivery` section, typed: each task's verdict, every
kill's detection, where the broker had each message, and the broker's queue over the run. Judged by
oomlab.workflows.lab.verdict, sampled by oomlab.workflows.lab.broker_view; the section itself is record.DeliverySection."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Depth:
    """The run's queue on the broker at one moment."""

    mono: float
    ready: int | None
    unacked: int | None  # Redis only: delivered, not yet acked (RabbitMQ cannot say without its management API)
    consumers: int | None  # RabbitMQ only


@dataclass
class Location:
    task_id: str
    where: str  # queued | unacked | absent
    delivery_count: int | None = None  # x-delivery-count of the waiting message (quorum queues)


@dataclass
class Redelivery:
    after_kill_mono: float
    started_mono: float
    seconds: float
    how: str  # retry (a new message from Celery) | redelivered (the broker's flag) | again (neither flag set)


@dataclass
class KillDetection:
    """Seconds from the kernel's kill to each observer knowing; None where it never did."""

    pid: int
    role: str
    kernel_time_mono: float
    oomlab: float | None
    celery_pool_noticed: float | None  # Celery's main process logged the child's death
    celery_worker_lost: float | None  # a task-failed event carrying WorkerLostError
    celery_heartbeat_expiry: float | None  # celery.events.state's expiry rule (whole-worker kills)


@dataclass
class PoisonLoop:
    """The same task id killed again and again."""

    kills: int
    per_minute: float | None  # None when every kill came at the same moment


@dataclass
class DeliveryVerdict:
    task_id: str
    outcome: str
    final_state: str | None
    state_history: list[tuple[float, str | None]]
    executions: int
    kills: int
    message: str  # where the broker had the message at the end: queued | unacked | absent
    delivery_counts: list[int | None]
    redeliveries: list[Redelivery] = field(default_factory=list)
    stuck_in_started: bool = False
    poison_loop: PoisonLoop | None = None
    # Celery's own events for the task (task-received, task-started, task-failed, task-retried...), each
    # at the time the worker stamped it: the exact timeline beside the backend states polled every 0.1 s
    events: list[tuple[float | None, str]] = field(default_factory=list)
    first_redelivery_s: float | None = None  # the first redelivery's seconds after its kill
