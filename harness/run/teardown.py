"""Stopping a run: every step runs even when an earlier one failed, in an order that reads the
kernel's figures while they exist and removes the group only once nothing is left in it."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from oomlab.errors import ScenarioFailed
from oomlab.run.state import read_main_vmhwm
from oomlab.worker import client_app
from oomlab.worker.leftovers import delete_queue
from oomlab.worker.temp_dir import remove_temp_dir

if TYPE_CHECKING:
    from oomlab.run.state import RunState

Step = Callable[[], object]


def shutdown(run: RunState) -> None:
    placement = run.placement
    quick = nothing_left_to_see(run) or run.signals.hurried  # a further signal: no grace for the worker
    run.record.worker.stopped_with = "SIGKILL" if quick else "SIGTERM"
    run_steps(run, _steps(run, quick))
    placement.describe_worker(run.record.worker)
    if placement.workers:
        run.record.worker.exit_code = placement.workers[0].returncode
        for restart, worker in zip(run.record.worker.restarts, placement.workers[1:], strict=False):
            restart.exit_code = worker.returncode
    run.lease.release()


def _steps(run: RunState, quick: bool) -> list[Step]:
    placement, group = run.placement, run.placement.group
    steps: list[Step] = [lambda: read_main_vmhwm(run), *placement.stop_steps(quick)]
    if group is not None:
        steps += [lambda: read_group_peak(run), group.kill_all]
    steps += placement.after_stop_steps()
    steps += [partial(hook.worker_stopped, run) for hook in run.hooks]
    if not placement.owns_worker and run.replay is not None:
        steps.append(lambda: revoke_unfinished(run))
    if run.app is not None and run.connection is not None and run.owns_queue:
        broker_url = run.connection.broker_url
        steps += [partial(delete_queue, broker_url, queue) for queue in run.queues]  # a durable queue outlives us
    steps += run.observers.stop_steps() if run.observers else []
    if run.poison_guard is not None:
        steps.append(run.poison_guard.stop)
    steps += [hook.stop for hook in run.hooks]
    if run.planned:
        steps.append(lambda: scenario_teardown(run))
    if run.app is not None:
        steps.append(lambda: client_app.detach(run.app))
    if run.connection is not None:
        steps.append(run.connection.stop)
    steps.append(placement.remove)
    if run.worker_tmp:  # billiard's pymp-* dirs, and whatever else the worker left in its TMPDIR
        steps.append(partial(remove_temp_dir, run.worker_tmp))
    return steps


def scenario_teardown(run: RunState) -> None:
    """The scenario's teardown(): its failure becomes the run's (exit 6) once cleanup is over."""
    try:
        run.scenario.teardown(run.context())
    except ScenarioFailed as failure:
        run.teardown_failure = failure
        if run.record.status == "complete":
            run.record.status, run.record.message = "error", failure.message
        raise


def run_steps(run: RunState, steps: list[Step]) -> None:
    for step in steps:
        try:
            step()
        except Exception as exc:  # keep cleaning up; say what failed in the record
            run.record.environment.cleanup_errors.append(f"{type(exc).__name__}: {exc}")


def nothing_left_to_see(run: RunState) -> bool:
    """Every task final, every observation in, and no hook watching what the broker keeps after the
    worker stops: the worker's own group is then killed outright. Celery's warm shutdown would take
    2 s more (its pool's threads wind down on timeouts) and add nothing."""
    replay = run.replay
    return (
        run.placement.can_stop_outright
        and not any(hook.wants_warm_shutdown for hook in run.hooks)
        and replay is not None
        and replay.all_sent
        and replay.unfinished() == 0
        and run.record.status == "complete"
    )


def revoke_unfinished(run: RunState) -> None:
    """An attached worker outlives the run: what it has not finished of ours is revoked, not left
    for it to run into the next run."""
    assert run.replay is not None
    if unfinished := run.replay.unfinished_ids():
        run.app.control.revoke(unfinished)
        run.record.worker.revoked = unfinished


def read_group_peak(run: RunState) -> None:
    group = run.placement.group
    assert group is not None
    run.group_peak = group.peak_bytes()
    run.record.group.oom_kill_count = group.oom_kill_count()
