"""A load run inside a Run: a thin driver over the parts that each do one job. The book holds the
tasks in flight and streams each final one to tasks.jsonl; the scheduler says when to send what; the
follower reads the probe's lines and the result backend; the finish says when the run may stop and
settles what is left; the figures sample once a second and feed the live view.

The Run calls `drive(run)` in place of its plan replay and `collect(record)` at each checkpoint; to
the rest of the Run the driver looks like a Replay whose task list is always empty (the tasks are in
the stream), so the checkpoint's cost depends on the tasks in flight, not on the tasks sent.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, ClassVar

from oomlab.config.load_mix import call_source, sent_names
from oomlab.config.load_shapes import PLAN, LoadShape
from oomlab.config.routing import class_tasks
from oomlab.record.schema import KillRecord, TaskRecord
from oomlab.record.stream import TASKS_FILE
from oomlab.run.hooks import RunHook
from oomlab.run.load.book import Book
from oomlab.run.load.depth import QueueDepth
from oomlab.run.load.figures import Figures, LiveFigures, kept_events
from oomlab.run.load.finish import Finish
from oomlab.run.load.follow import Follower
from oomlab.run.load.replacements import Replacements
from oomlab.run.load.schedule import Scheduler
from oomlab.run.load.sender import Sender
from oomlab.run.load.soak import Soak
from oomlab.run.load.stats import total_of
from oomlab.run.plan import plan_names, run_plan, sent_calls
from oomlab.run.poison import poisoned_ids
from oomlab.run.registered import check_registered
from oomlab.run.view import RunView

if TYPE_CHECKING:
    from oomlab.run.state import RunState as Run

FOLLOW_SECONDS = 0.02  # the monitor reads the probe every 20 ms
STATE_POLL_SECONDS = 0.25  # how often a task whose child died is looked up in the result backend
SAMPLE_SECONDS = 1.0
PROGRESS_SECONDS = 0.5


class LoadDriver(RunHook):
    """Also a hook of the run: `collect` adds the load section each time the record is assembled."""

    def __init__(self, run: Run, shape: LoadShape):
        assert run.observers is not None and run.connection is not None, "the worker runs"
        self.run = run
        self.shape = shape
        self.book = Book(run.run_dir, shape.sending_s, self._killed)
        self.sender = Sender(run.app, run.send_queue, self.book.sent, lock=self.book.lock)
        self.depth = QueueDepth(run.app, run.connection.broker_url, run.queue)
        self.scheduler = Scheduler(shape, self.book, self.sender, self.depth)
        self.soak = Soak(run.config.memory_bytes)
        self.replacements = Replacements()
        self.figures = Figures(self.book, run.observers, self.depth, run.config.memory_bytes)
        self.follower = Follower(
            self.book,
            run.observers.monitor,
            run.app,
            self.soak,
            self.replacements,
            lambda: self.figures.last_depth,
            run.observers.sampler.leaf_highest,
        )
        self.finish = Finish(run, self.book, shape.tasks if shape.kind == PLAN else None)
        self.stopped_at: float | None = None
        self.due_at: dict[str, float] = {}

    def _killed(self, task_id: str) -> KillRecord | None:
        return next((k for k in self.run.record.kills if k.task_id == task_id), None)

    # --- the Replay surface the Run reads -----------------------------------------------------
    tasks: ClassVar[list[TaskRecord]] = []  # always empty: a load run's tasks are in tasks.jsonl
    states: ClassVar[dict[str, tuple[str | None, str | None]]] = {}

    @property
    def all_sent(self) -> bool:
        return self.scheduler.sending_done

    def unfinished(self) -> int:
        return len(self.book.flights) + (0 if self.scheduler.sending_done else 1)

    def unfinished_ids(self) -> list[str]:
        return list(self.book.flights)

    def progress(self) -> tuple[int, int]:
        """Tasks final, and tasks in all: a streamed plan's or a closed loop's count, else those sent."""
        return self.book.final_count, max(self.shape.tasks or 0, self.book.submitted)

    # --- the run ------------------------------------------------------------------------------
    def drive(self) -> None:
        run = self.run
        run.planned = True
        if self.shape.kind == PLAN:  # a plan too large to hold, read as it is sent
            plan = run_plan(run)
            self.scheduler.begin(sent_calls(plan, run.scenario.name), f"the scenario's plan of {len(plan.calls)} calls")
            check_registered(run, plan_names(plan, run.scenario.name))
        else:
            ctx = run.context()
            self.scheduler.begin(*call_source(run.scenario, ctx, self.shape.seed, class_tasks(run.config)))
            check_registered(run, sent_names(run.scenario, ctx, class_tasks(run.config)))
        run.record.files["tasks"] = TASKS_FILE
        try:
            self._loop()
        finally:
            self.stopped_at = self.stopped_at or time.monotonic()  # interrupted: sending stops here too
            self.sender.close()
            self.finish.finish_all(poisoned_ids(self.run))
            self.depth.close()

    def sending_window(self) -> float:
        """Seconds of the schedule that sending covered (the offered rate's divisor)."""
        return self.scheduler.sending_window(self.book.start, self.stopped_at)

    def _loop(self) -> None:
        run, book, scheduler = self.run, self.book, self.scheduler
        run.record.config = dataclasses.replace(run.config, timeout_used=self.finish.drain)
        self.book.start = self.replacements.origin = time.monotonic()
        self.figures.begin()
        self.due_at = dict.fromkeys(("follow", "lost", "sample", "progress"), book.start)
        while True:
            self.sender.check()
            now = time.monotonic()
            elapsed = now - book.start
            scheduler.send(elapsed)
            self._tick(now, elapsed)
            why = self.finish.why_stop(now, scheduler.sending_done, scheduler.sending_ended_at)
            if why is not None:
                if why:
                    run.record.message = why
                break
            wake = min(self.due_at["follow"], self.due_at["sample"])
            if (due := scheduler.wake(book.start, now)) is not None:
                wake = min(wake, due)
            time.sleep(max(0.0, min(wake - time.monotonic(), FOLLOW_SECONDS)))
        time.sleep(0.3)  # the last events and kernel lines of a final kill
        self.follower.follow()
        self.follower.look_up_lost(poisoned_ids(self.run))
        run.record.worker.observed_until_mono = time.monotonic()
        self.figures.end()

    def _tick(self, now: float, elapsed: float) -> None:
        """What is due besides sending: following the probe, looking up lost tasks, the once-a-second
        sample and checkpoint, the live view."""
        due = self.due_at
        if now >= due["follow"]:
            self.follower.follow()
            self.run.kill_watch.check(self.run)  # a poison message is revoked before its next delivery
            due["follow"] = now + FOLLOW_SECONDS
        if now >= due["lost"]:
            self.follower.look_up_lost(poisoned_ids(self.run))
            due["lost"] = now + STATE_POLL_SECONDS
        if now >= due["sample"]:
            self.figures.sample(elapsed)
            # CPU time of this thread: the checkpoint's own work, not the GIL waits for the sender threads
            # or the other processes on the machine, which wall time would count
            began = time.thread_time()
            self.run.checkpoint()
            self.figures.checkpoint_cost.record(time.thread_time() - began)
            due["sample"] = now + SAMPLE_SECONDS
        if now >= due["progress"]:
            self.run.each_hook("running")
            due["progress"] = now + PROGRESS_SECONDS

    def live(self) -> LiveFigures:
        """The live view's figures (LoadLive reads them through the run's replay)."""
        return self.figures.live(self.follower.kills_seen)

    # --- the record ---------------------------------------------------------------------------
    def collect(self, run: RunView) -> None:
        """run.json's `load` section: aggregates only, the same size at a thousand tasks or a million."""
        from oomlab.run.load.section import apply_summary, load_section

        with self.book.lock:
            total = total_of(self.book.by_name)  # merged once for both
            run.record.load = load_section(self, run.record, total)
            apply_summary(self.book, run.record.summary, total)
        # task events that came since the last prune (the final record is assembled after the
        # loop's last one): the record keeps only what attribution reads, like the capture
        keep = kept_events(run.record.celery_events)
        run.record.celery_events = [event for event in run.record.celery_events if keep(event)]

    def finished(self, run: RunView) -> None:
        """The harness's cost once more, after the other hooks drew the timeline and wrote the report
        (the driver is the run's last hook): its peak RSS is the whole run's, reading the files included."""
        if run.record.load is not None:
            run.record.load.harness = self.figures.own_cost()


def drive(run: Run) -> LoadDriver:
    """Run `run`'s load shape (its config's `load`) in place of the plan replay."""
    driver = LoadDriver(run, LoadShape.from_dict(run.config.load))
    run.replay = driver  # what the run reads of a replay: no task list, the unfinished ones
    run.hooks = (*run.hooks, driver)
    driver.drive()
    return driver
