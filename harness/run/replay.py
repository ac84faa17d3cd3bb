"""Sending a plan's task calls on schedule and following each task to a final state."""

from __future__ import annotations

import time
import uuid
from typing import Any, Protocol

from oomlab.assemble.outcomes import FINAL_STATES, describe_exception
from oomlab.config.plan_calls import in_time_order
from oomlab.config.scenario import Plan
from oomlab.errors import BrokerUnreachable
from oomlab.record.schema import TaskRecord
from oomlab.run.sending import send_call


class Following(Protocol):
    """What the run reads of whatever sends its work (a plan's Replay, a load driver): the tasks it
    holds for the record, their states, and what is not final yet."""

    @property
    def tasks(self) -> list[TaskRecord]: ...

    @property
    def states(self) -> dict[str, tuple[str | None, str | None]]: ...

    @property
    def all_sent(self) -> bool: ...

    def unfinished(self) -> int: ...

    def unfinished_ids(self) -> list[str]: ...

    def progress(self) -> tuple[int, int]: ...


class Replay:
    def __init__(self, app: Any, plan: Plan, queue: Any):
        self.app = app
        self.queue = queue
        self.pending_calls = list(in_time_order(plan.calls))  # a small plan (oomlab.run.plan)
        self.tasks: list[TaskRecord] = []
        self.states: dict[str, tuple[str | None, str | None]] = {}
        self.unreachable_since: float | None = None  # the broker or result backend stopped answering

    def send_due(self, elapsed: float) -> None:
        while self.pending_calls and self.pending_calls[0].at <= elapsed:
            call = self.pending_calls.pop(0)
            task_id = str(uuid.uuid4())
            self.tasks.append(
                TaskRecord(
                    id=task_id,
                    name=call.task,
                    label=call.label,
                    args=list(call.args),
                    sent_mono=time.monotonic(),
                    chained=[link.task for link in call.chained()],
                )
            )
            try:
                send_call(self.app, call, task_id, self.queue)
            except connection_errors() as exc:  # Celery's own publish retries are spent
                raise BrokerUnreachable(
                    f"the broker stopped answering mid-run ({exc}); the record keeps what was seen"
                ) from None

    def poll_states(self, include_final: bool = False) -> None:
        """Ask the result backend for each task's state; `include_final` keeps asking after a final
        state too (the delivery lab watches whether a FAILURE is overwritten by a redelivery)."""
        asking = [
            task
            for task in self.tasks
            if include_final or self.states.get(task.id, ("PENDING",))[0] not in FINAL_STATES
        ]
        now = time.monotonic()
        try:
            states = fetch_states(self.app, [task.id for task in asking])
        except connection_errors() as exc:  # a restart of the backend: ask again on the next poll
            self.unreachable_since = self.unreachable_since or now
            if now - self.unreachable_since > UNREACHABLE_LIMIT:
                raise BrokerUnreachable(
                    f"the result backend stopped answering for {UNREACHABLE_LIMIT:.0f} s mid-run ({exc}); "
                    f"the record keeps what was seen"
                ) from None
            return
        self.unreachable_since = None
        for task in asking:
            state = states[task.id][0]
            if not task.state_history or task.state_history[-1][1] != state:
                task.state_history.append((now, state))
        self.states.update(states)

    @property
    def all_sent(self) -> bool:
        return not self.pending_calls

    def unfinished_ids(self) -> list[str]:
        return [t.id for t in self.tasks if self.states.get(t.id, ("PENDING",))[0] not in FINAL_STATES]

    def progress(self) -> tuple[int, int]:
        """Tasks final, and tasks in all (sent or to send)."""
        total = len(self.tasks) + len(self.pending_calls)
        return total - self.unfinished(), total

    def unfinished(self) -> int:
        return sum(1 for t in self.tasks if self.states.get(t.id, ("PENDING",))[0] not in FINAL_STATES) + len(
            self.pending_calls
        )


BATCH = 500
UNREACHABLE_LIMIT = 30.0  # seconds a result backend may be away (a restart) before the run gives up


def connection_errors() -> tuple[type[BaseException], ...]:
    """What a lost broker or Redis result backend raises through kombu and redis-py."""
    import redis
    from kombu.exceptions import OperationalError

    return (OSError, OperationalError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def fetch_states(app: Any, task_ids: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """(state, exception) per task id: one MGET per BATCH ids on a Redis result backend (thousands of
    tasks stay cheap to follow), one request per task on any other."""
    backend = app.backend
    states: dict[str, tuple[str | None, str | None]] = {}
    batched = hasattr(backend, "client") and hasattr(backend, "get_key_for_task") and hasattr(backend.client, "mget")
    for start in range(0, len(task_ids), BATCH if batched else 1):
        chunk = task_ids[start : start + (BATCH if batched else 1)]
        if batched:
            values = backend.client.mget([backend.get_key_for_task(task_id) for task_id in chunk])
            metas = [backend.decode_result(value) if value else {"status": "PENDING"} for value in values]
        else:
            metas = [backend.get_task_meta(chunk[0])]
        for task_id, meta in zip(chunk, metas, strict=False):
            state = meta.get("status")
            states[task_id] = (state, describe_exception(meta.get("result")) if state == "FAILURE" else None)
    return states
