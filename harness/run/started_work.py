"""The work a run's tasks started: the tasks the worker sent itself (a chord's parts and callback, a
retry, a task sent from a task). A run ends when these have ended too, not when the tasks it sent
return (a task that starts a chord returns before the chord runs)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from oomlab.assemble.outcomes import FINAL_STATES
from oomlab.run.replay import fetch_states

if TYPE_CHECKING:
    from oomlab.run.state import RunState

FOLLOW_SECONDS = 0.25  # how often the started work is looked at once the sent tasks are final


class StartedWork:
    def __init__(self) -> None:
        self.next_look = 0.0
        self.open = 0

    def unfinished(self, run: RunState) -> int:
        """Tasks the worker sent or ran beside the run's own that are not final yet (a state in the
        result backend, the state task_postrun saw, or stopped as poison)."""
        now = time.monotonic()
        if now < self.next_look or run.observers is None:
            return self.open
        self.next_look = now + FOLLOW_SECONDS
        run.observers.monitor.sync()  # a task's sends are in the probe before its own end
        run.collect()
        own = {task.id for task in run.replay.tasks} if run.replay else set()
        poison = {p.task_id for p in run.record.poison}
        waiting = [task_id for task_id in run.observed if task_id not in own and task_id not in poison]
        asking = [t for t in waiting if run.external_states.get(t, ("PENDING",))[0] not in FINAL_STATES]
        if asking:
            run.external_states.update(fetch_states(run.app, asking))
        ended_in_probe = {
            task.id
            for task in run.record.tasks
            if task.executions and task.executions[-1].state in ("SUCCESS", "FAILURE")
        }
        self.open = sum(
            1
            for task_id in asking
            if run.external_states.get(task_id, ("PENDING",))[0] not in FINAL_STATES and task_id not in ended_in_probe
        )
        return self.open
