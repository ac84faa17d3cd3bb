"""Is the worker up, and if it never came up, why, in one plain sentence."""

from __future__ import annotations

from dataclasses import dataclass

from oomlab.config.sizes import format_size
from oomlab.observe.monitor import Observations
from oomlab.observe.sampler import PidStats
from oomlab.probe.events import CHILD_INIT, WORKER_READY
from oomlab.record.schema import KillRecord


@dataclass
class StartState:
    ready: bool
    failed: bool
    reason: str = ""


def start_state(
    obs: Observations, expected_children: int, main_exited: bool, kills_so_far: int, concurrency: int
) -> StartState:
    """Ready: the main process sent worker_ready and every pool child finished its init and lives.
    Failed: the main process died, or more OOM kills than there are children (they keep being
    replaced and killed again)."""
    alive_children = {r["pid"] for r in obs.probe if r["ev"] == CHILD_INIT} - set(obs.exits)
    main_ready = any(r["ev"] == WORKER_READY for r in obs.probe)
    if main_ready and len(alive_children) >= expected_children:
        return StartState(ready=True, failed=False)
    if main_exited:
        return StartState(ready=False, failed=True, reason="main_exited")
    if kills_so_far > max(1, concurrency):
        return StartState(ready=False, failed=True, reason="children_killed")
    return StartState(ready=False, failed=False)


def failure_message(
    reason: str,
    kills: list[KillRecord],
    stats: dict[int, PidStats],
    main_pid: int,
    limit: int,
    concurrency: int,
    exit_code: int | None,
    timeout: float,
    group_oom_kills: int = 0,
) -> str:
    main_kill = next((k for k in kills if k.role == "main"), None)
    limit_text = format_size(limit)
    if main_kill:
        return (
            f"worker could not start: its main process was OOM-killed during start-up at the {limit_text} limit "
            f"(it held {format_size(main_kill.rss_bytes)}); raise --memory"
        )
    child_kills = [k for k in kills if k.role == "child"]
    if child_kills:
        children = [s for pid, s in stats.items() if pid != main_pid]
        private = max((s.max_uss or 0 for s in children), default=0)
        # private pages per child plus the main process's RSS (every shared page counted once) add up
        # like the group's usage; a child killed before its private pages were sampled has only its RSS
        per_child = (
            f"{format_size(private)} private"
            if private
            else f"{format_size(max((k.rss_bytes or 0 for k in child_kills), default=0))} RSS"
        )
        main = stats.get(main_pid)
        main_text = f" + main {format_size(main.max_rss)} RSS" if main else ""
        return (
            f"worker killed during start-up: {concurrency} children × {per_child}{main_text} > "
            f"{limit_text} limit ({len(child_kills)} OOM kills before it was ready); "
            f"lower --concurrency, load the memory lazily, or raise --memory"
        )
    if reason == "main_exited" and group_oom_kills:
        # killed before Python ran a line of the worker: no probe record, an empty worker.log
        return (
            f"worker could not start: the kernel OOM-killed it {group_oom_kills} time(s) before Celery was loaded "
            f"(exit code {exit_code}); the {limit_text} limit is below what the Python interpreter needs; raise --memory"
        )
    if reason == "main_exited":
        return f"worker exited during start-up with code {exit_code}; see worker.log in the run directory"
    return f"worker did not become ready within {timeout:.0f} s; see worker.log in the run directory"
