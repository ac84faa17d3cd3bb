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
            self.tasks.append(TaskRecord(
                id=task_id, name=call.task, label=call.label, args=list(call.args), sent_mono=time.monotonic(),
            ))
            self.app.send_task(call.task, args=call.args, kwargs=call.kwargs, task_id=task_id, queue=self.queue)

    def poll_states(self, include_final: bool = False) -> None:
        """Ask the result backend for each task's state; `include_final` keeps asking after a final
        state too (the delivery lab watches whether a FAILURE is overwritten by a redelivery)."""
        for task in self.tasks:
            known = self.states.get(task.id)
            if known and known[0] in FINAL_STATES and not include_final:
                continue
            meta = self.app.backend.get_task_meta(task.id)
            state = meta.get("status")
            if not task.state_history or task.state_history[-1][1] != state:
                task.state_history.append((time.monotonic(), state))
            self.states[task.id] = (state, describe_exception(meta.get("result")) if state == "FAILURE" else None)

    @property
    def all_sent(self) -> bool:
        return not self.pending_calls

    def unfinished(self) -> int:
        return sum(1 for t in self.tasks if self.states.get(t.id, ("PENDING",))[0] not in FINAL_STATES) + len(self.pending_calls)
