"""When to send what: an open loop sends each call at its due time on the shape's schedule, a closed
loop keeps the shape's number of tasks in flight; either ends when the shape's sending is over."""

from __future__ import annotations

import time
from collections.abc import Iterator

from oomlab.config.load_shapes import PLAN, LoadShape
from oomlab.config.scenario import TaskCall
from oomlab.run.load.book import Book
from oomlab.run.load.depth import QueueDepth
from oomlab.run.load.sender import Send, Sender

SEND_TICK = 0.001  # seconds: an open loop's sends are at most this late for the batching


class Scheduler:
    def __init__(self, shape: LoadShape, book: Book, sender: Sender, depth: QueueDepth):
        self.shape, self.book, self.sender, self.depth = shape, book, sender, depth
        self.calls: Iterator[TaskCall] = iter(())
        self.source = ""  # where the calls come from (the scenario's mix, or its plan)
        self.schedule: Iterator[float] | None = None  # an open loop's due times, seconds after the start
        self.next_due: float | None = None
        self.sending_done = False
        self.sending_ended_at: float | None = None
        self.depth_at_send_end: int | None = None
        self.waiting: TaskCall | None = None  # a plan's next call, not due yet or no room for it

    def begin(self, calls: Iterator[TaskCall], source: str) -> None:
        self.calls, self.source = calls, source
        self.schedule = self.shape.due_times() if self.shape.kind in ("rate", "stages") else None
        self.next_due = next(self.schedule, None) if self.schedule else None

    def send(self, elapsed: float) -> None:
        """What is due `elapsed` seconds after the load began."""
        if self.schedule is not None:
            self._send_scheduled(self.schedule, elapsed)
        elif self.shape.kind == PLAN:
            self._send_plan(elapsed)
        elif not self.sending_done:
            self._send_closed(elapsed)

    def wake(self, start: float, now: float) -> float | None:
        """The monotonic time to wake for the next scheduled send (an open loop's), else None: its due
        time, but no sooner than SEND_TICK from `now`, so that a rate of thousands a second sends a
        few at each wake-up (in one batch) rather than waking the loop once per task."""
        due = self.waiting.at if self.waiting is not None else self.next_due
        return None if due is None else max(start + due, now + SEND_TICK)

    def sending_window(self, start: float, stopped_at: float | None) -> float:
        """Seconds of the schedule that sending covered: its whole length once it ended, else up to now
        (a checkpoint mid-run) or to where the run stopped (interrupted): the offered rate's divisor."""
        if self.sending_done:
            return self.shape.sending_s  # the whole schedule (its last send may be due before its end)
        end = stopped_at or time.monotonic()
        return max(1e-9, min(self.shape.sending_s, end - start))

    def _send_scheduled(self, schedule: Iterator[float], elapsed: float) -> None:
        due: list[Send] = []  # every send due by now, in order, as one batch: each keeps its own due time
        while self.next_due is not None and self.next_due <= elapsed:
            due.append(self.book.open(next(self.calls), self.next_due))
            self.next_due = next(schedule, None)
        if due:
            self.sender.submit(due)
        if self.next_due is None:
            self._sending_ended()

    def _send_closed(self, elapsed: float) -> None:
        shape, book = self.shape, self.book
        if elapsed >= shape.sending_s or (shape.tasks is not None and book.submitted >= shape.tasks):
            self._sending_ended()
            return
        room = shape.in_flight - book.own_in_flight
        if shape.tasks is not None:
            room = min(room, shape.tasks - book.submitted)
        if room > 0:
            self.sender.submit([book.open(next(self.calls), None) for _ in range(room)])

    def _send_plan(self, elapsed: float) -> None:
        """A plan's calls in order, each once its `at` has come, while fewer than the shape's
        `in_flight` are outstanding: the plan is read as it is sent, never held."""
        due: list[Send] = []
        room = self.shape.in_flight - self.book.own_in_flight
        while room > 0 and not self.sending_done:
            call = self.waiting or next(self.calls, None)
            self.waiting = None
            if call is None:
                self._sending_ended()
            elif call.at > elapsed:
                self.waiting = call
                break
            else:
                due.append(self.book.open(call, None))  # no open-loop schedule: never "late"
                room -= 1
        if due:
            self.sender.submit(due)

    def _sending_ended(self) -> None:
        if not self.sending_done:
            self.sending_done = True
            self.sending_ended_at = time.monotonic()
            self.depth_at_send_end = self.depth.read()
