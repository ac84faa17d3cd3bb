"""One protocol for everything that watches a run from outside the worker: the terminal's progress,
the delivery lab's broker view, the timeline picture. The run calls each hook in its own thread, in
order; a hook reads the run through a RunView (read-only) and may add to the record, and never
changes how the run goes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from oomlab.run.view import RunView


class RunHook:
    """Every method is optional: subclass and override what you watch."""

    wants_warm_shutdown = False  # True: the hook inspects the broker after Celery's own shutdown

    def started(self, run: RunView) -> None:
        """The worker process exists and the observers run (it may not be ready yet)."""

    def starting(self, run: RunView) -> None:
        """Called repeatedly while the run waits for the worker to be ready."""

    def running(self, run: RunView) -> None:
        """Called on every round of the replay loop (about ten times a second)."""

    def worker_stopped(self, run: RunView) -> None:
        """Every worker process is gone and the broker still runs: the moment to inspect it."""

    def collect(self, run: RunView) -> None:
        """The record was just assembled from the evidence: add this hook's own section."""

    def finished(self, run: RunView) -> None:
        """The final record is written; `run.record` will not change again except by hooks here."""

    def stop(self) -> None:
        """Release what the hook holds (threads, connections); called once, whatever happened."""
