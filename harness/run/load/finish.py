"""Ending a load run: when it may stop (every task final and settled, the worker gone for good, or the
backlog not drained in time), and what never became final by then."""

from __future__ import annotations

from typing import TYPE_CHECKING

from oomlab.assemble.truth import worker_lost_cause
from oomlab.record.schema import Outcome
from oomlab.run.load.book import Book
from oomlab.run.replay import fetch_states
from oomlab.run.restart import GONE_FOR_GOOD_SECONDS, restart_worker

if TYPE_CHECKING:
    from oomlab.run.state import RunState as Run

DRAIN_SECONDS = 60.0  # after the schedule ends, how long the backlog may take to drain (--timeout)


class Finish:
    """`plan`: a streamed plan's (oomlab.run.plan) calls in all; it ends as a plan run does, timed out
    at its whole run's timeout (the config's `timeout_used`, grown with its tasks), not at a drain
    after sending, and a worker gone for good is `worker_lost`."""

    def __init__(self, run: Run, book: Book, plan: int | None = None):
        self.run, self.book, self.plan = run, book, plan
        self.drain = run.config.timeout or DRAIN_SECONDS
        if plan is not None:
            self.drain = run.config.timeout_used or self.drain
        self.final_since: float | None = None
        self.worker_gone_at: float | None = None

    def why_stop(self, now: float, sending_done: bool, sending_ended_at: float | None) -> str | None:
        """The reason to end the loop now ("" when it ended well), else None (go on)."""
        if self._settled(now, sending_done) or self._worker_gone(now):
            return ""
        if self.plan is not None:
            return self._plan_timed_out(now)
        if sending_ended_at is not None and now - sending_ended_at > self.drain:
            flights = len(self.book.flights)
            return f"{flights} tasks were still unfinished {self.drain:.0f} s after sending ended (--timeout)"
        return None

    def _unfinished(self) -> int:
        """Tasks in flight, and a plan's calls not sent yet."""
        unsent = 0 if self.plan is None else max(0, self.plan - self.book.submitted)
        return len(self.book.flights) + unsent

    def _plan_timed_out(self, now: float) -> str | None:
        if now - self.book.start <= self.drain:
            return None
        self.run.unfinished_status = "timed_out"
        return f"timed out after {self.drain:.0f} s with {self._unfinished()} tasks unfinished"

    def _settled(self, now: float, sending_done: bool) -> bool:
        """Everything sent is final and has stayed so for the run's settle time."""
        if not (sending_done and not self.book.flights):
            self.final_since = None
            return False
        self.final_since = self.final_since or now
        return now - self.final_since >= self.run.config.settle

    def _worker_gone(self, now: float) -> bool:
        """The worker's main process exited: restarted under `--restart always`, else the run stops
        (nobody is left to finish the rest)."""
        run = self.run
        worker = run.placement.worker
        if worker.poll() is None:
            return False
        self.worker_gone_at = self.worker_gone_at or now
        if run.config.restart == "always":
            if now - self.worker_gone_at >= run.config.restart_delay:
                restart_worker(run, now)
                self.worker_gone_at = None
            return False
        if now - self.worker_gone_at <= GONE_FOR_GOOD_SECONDS:
            return False
        code = "" if worker.returncode is None else f" (code {worker.returncode})"
        run.record.message = f"the worker's main process exited{code} with {self._unfinished()} tasks unfinished"
        if self.plan is not None:
            run.unfinished_status = "worker_lost"
            run.record.worker.lost_cause = worker_lost_cause(run.placement.log_path)
        return True

    def finish_all(self, poisoned: frozenset[str] = frozenset()) -> None:
        """What never became final by the end: its state as the backend has it, in the stream too (a
        task stopped as poison is poison, though the worker died before its revoked delivery came)."""
        book = self.book
        remaining = list(book.flights.values())
        states = fetch_states(self.run.app, [flight.id for flight in remaining]) if remaining else {}
        for flight in remaining:
            state, exception = states.get(flight.id, (None, None))
            outcome: Outcome = "stuck" if flight.started is not None else "never_started"
            outcome = "poison" if flight.id in poisoned else outcome
            book.final(flight, outcome, state, exception, None, None)
        book.stream.close()
