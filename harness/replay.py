"""Sending a plan's task calls on schedule and following each task to a final state."""

from __future__ import annotations

import time
import uuid

from harness.outcomes import FINAL_STATES, describe_exception
from harness.record import TaskRecord
from harness.scenario import Plan


class Replay:
    def __init__(self, app, plan: Plan, queue):
        self.app = app
        self.queue = queue
        self.pending_calls = sorted(plan.calls, key=lambda call: call.at)
        self.tasks: list[TaskRecord] = []
        self.states: dict[str, tuple[str, str | None]] = {}

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
                )
            )
            self.app.send_task(call.task, args=call.args, kwargs=call.kwargs, task_id=task_id, queue=self.queue)

    def poll_states(self, include_final: bool = False) -> None:
        """Ask the result backend for each task's state; `include_final` keeps asking after a final
        state too (the delivery lab watches whether a FAILURE is overwritten by a redelivery)."""
        asking = [
            task
            for task in self.tasks
            if include_final or self.states.get(task.id, ("PENDING",))[0] not in FINAL_STATES
        ]
        states = fetch_states(self.app, [task.id for task in asking])
        now = time.monotonic()
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

    def unfinished(self) -> int:
        return sum(1 for t in self.tasks if self.states.get(t.id, ("PENDING",))[0] not in FINAL_STATES) + len(
            self.pending_calls
        )


BATCH = 500


def fetch_states(app, task_ids: list[str]) -> dict[str, tuple[str | None, str | None]]:
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
