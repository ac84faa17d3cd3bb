"""A worker's main process gone: started again under the restart policy (the plan's drive and the
load driver both do it), or, with no policy, given up on after GONE_FOR_GOOD_SECONDS."""

from __future__ import annotations

from typing import TYPE_CHECKING

from oomlab.record.schema import Restart

if TYPE_CHECKING:
    from oomlab.run.state import RunState

GONE_FOR_GOOD_SECONDS = 1.0  # a main process gone this long with no restart policy: nobody finishes the rest


def restart_worker(run: RunState, now: float) -> None:
    """A new main process under the restart policy, watched like the first."""
    previous = run.placement.worker
    worker = run.placement.restart()
    if run.observers is not None:
        run.observers.watch_pid(worker.pid)
    run.record.worker.restarts.append(
        Restart(worker.pid, now, previous_pid=previous.pid, previous_exit_code=previous.returncode)
    )
