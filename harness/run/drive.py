"""The replay loop: send the plan's calls on time, follow their states, restart a dead worker under
a restart policy, and stop when every task is final, the worker is gone for good, or time is up."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from oomlab.assemble.truth import worker_lost_cause
from oomlab.run.plan import choose_way, plan_names, run_plan, timeout_of
from oomlab.run.registered import check_names_locally, check_registered
from oomlab.run.replay import Replay
from oomlab.run.restart import GONE_FOR_GOOD_SECONDS, restart_worker
from oomlab.run.started_work import StartedWork
from oomlab.run.state import CHECKPOINT_SECONDS

if TYPE_CHECKING:
    from oomlab.run.state import RunState


def drive(run: RunState) -> None:
    """Send the work: a load shape (--rate, --stages, --in-flight) as a stream, or the plan's calls."""
    if run.config.load:
        from oomlab.run.load.driver import drive as drive_load  # the load driver builds on this module

        drive_load(run)
    else:
        replay_plan(run)


def check_plan_names(run: RunState) -> None:
    """A plan run's task names against the scenario's app, before the worker starts (load runs
    check theirs when the worker is ready); then which way the plan is sent (oomlab.run.plan)."""
    if not run.config.load:
        check_names_locally(run.scenario.app, plan_names(run_plan(run), run.scenario.name))
        choose_way(run)


class CeleryNotice:
    """Celery stores a killed task's FAILURE before it sends task-failed: a run that ended the moment
    every state was final lost Celery's own notice (the detection oomlab is compared with) on a slow
    machine. The run waits for it, a few seconds at most, only while a killed task reads FAILURE
    without it (a requeued task gets no task-failed: it reads STARTED/PENDING, not FAILURE)."""

    def __init__(self) -> None:
        self.next_look = 0.0
        self.waiting = False

    def pending(self, run: RunState, settled_for: float) -> bool:
        if settled_for >= CELERY_NOTICE_WAIT_S:
            return False
        now = time.monotonic()
        if now >= self.next_look:
            self.next_look = now + 0.25
            run.collect()
            failed = {t.id for t in run.record.tasks if t.state == "FAILURE"}
            self.waiting = any(
                k.task_id in failed and k.role == "child" and "celery_worker_lost" not in k.detected
                for k in run.record.kills
            )
        return self.waiting


CELERY_NOTICE_WAIT_S = 5.0


def replay_plan(run: RunState) -> None:
    config, placement = run.config, run.placement
    plan = run_plan(run)
    timeout = timeout_of(run, plan)
    run.record.config = dataclasses.replace(config, timeout_used=timeout)
    check_registered(run, plan_names(plan, run.scenario.name))
    replay = run.replay = Replay(run.app, plan, run.send_queue)
    started_work = StartedWork()
    celery_notice = CeleryNotice()
    started = last_checkpoint = time.monotonic()
    worker_gone_at = final_since = None
    while True:
        now = time.monotonic()
        replay.send_due(now - started)
        replay.poll_states(include_final=final_since is not None)
        run.each_hook("running")
        run.kill_watch.check(run)
        if replay.all_sent and replay.unfinished() == 0 and started_work.unfinished(run) == 0:
            final_since = final_since or now
            if now - final_since >= config.settle and not celery_notice.pending(run, now - final_since):
                break
        else:
            final_since = None
        if placement.worker.poll() is not None:
            worker_gone_at = worker_gone_at or now
            if config.restart == "always":
                if now - worker_gone_at >= config.restart_delay:
                    restart_worker(run, now)
                    worker_gone_at = None
            elif now - worker_gone_at > GONE_FOR_GOOD_SECONDS:
                code = placement.worker.returncode
                said = "" if code is None else f" (code {code})"
                run.record.message = (
                    f"the worker's main process exited{said} with {replay.unfinished()} tasks unfinished"
                )
                run.unfinished_status = "worker_lost"
                run.record.worker.lost_cause = worker_lost_cause(placement.log_path)
                break
        if now - started > timeout:
            unfinished = replay.unfinished() + started_work.open
            run.record.message = f"timed out after {timeout:.0f} s with {unfinished} tasks unfinished"
            run.unfinished_status = "timed_out"
            break
        if now - last_checkpoint >= CHECKPOINT_SECONDS:
            run.checkpoint()
            last_checkpoint = now
        time.sleep(0.1)
    time.sleep(0.3)  # the last events and kernel lines of the final kill
    replay.poll_states(include_final=True)
    run.record.worker.observed_until_mono = time.monotonic()  # what follows is oomlab stopping it
