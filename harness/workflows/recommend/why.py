"""Why the cheapest row's pool beat the others, in the measured figures: for the best row of every
other pool, either fewer slots fit in its limit (a prefork child pays for its own private pages and
for every shared page its tasks write to; a thread or greenlet pays only its task's growth) or its
slots were CPU-bound on fewer cores (one process runs Python on one core at a time)."""

from __future__ import annotations

from oomlab.config.durations import format_seconds
from oomlab.config.sizes import format_size
from oomlab.workflows.recommend.fleet import Candidate, FleetRow
from oomlab.workflows.recommend.profile import WorkerProfile

ONE_CORE = {
    "threads": "one process: its threads run Python one at a time (the GIL)",
    "gevent": "one process, one thread: greenlets take turns on it",
    "solo": "one task at a time",
}


def pool_reasons(rows: list[FleetRow], choice: FleetRow | None, profiles: dict[int, WorkerProfile]) -> list[str]:
    if choice is None:
        return []
    best: dict[str, FleetRow] = {}
    alongside: dict[str, FleetRow] = {}  # each other pool's row at the chosen limit
    for row in rows:  # cheapest first: the first of each other pool is its best
        pool = row.candidate.pool
        if pool != choice.candidate.pool:
            best.setdefault(pool, row)
            if row.candidate.limit_bytes == choice.candidate.limit_bytes:
                alongside[pool] = row
    return [
        _versus(choice, row, alongside.get(pool, row), profiles.get(choice.candidate.limit_bytes))
        if row.safe
        else _unsafe(choice, row)
        for pool, row in best.items()
    ]


def _unsafe(chosen: FleetRow, other: FleetRow) -> str:
    return f"{chosen.candidate.pool} over {other.candidate.pool}: {other.candidate.pool} is not safe ({other.why})"


def _fleet(row: FleetRow) -> str:
    c = row.candidate
    return f"{row.replicas} x {format_size(c.limit_bytes)} = {format_size(row.total_bytes)}"


def _versus(chosen: FleetRow, other: FleetRow, same_limit: FleetRow, profile: WorkerProfile | None) -> str:
    """`other`: the other pool's cheapest row; `same_limit`: its row at the chosen limit (the
    like-for-like comparison of slots and throughput)."""
    c, o = chosen.candidate, other.candidate
    if other.total_bytes == chosen.total_bytes:
        head = f"the same memory ({_fleet(other)}), and the tie goes to the more throughput"
    else:
        head = f"{o.pool} needs {_fleet(other)} at its cheapest against {_fleet(chosen)}"
    return f"{c.pool} over {o.pool}: {head}; {_cause(chosen, same_limit, profile)}"


def _carried(o: Candidate, ceiling: float) -> str:
    """The CPU ceiling beside the row's figure, by the table's one rule (throughput.sustainable): a run
    whose threads waited for a core while others held them is projected up to it; a run that had its
    cores is what it measured, and the ceiling, when above, is named as what it did not reach."""
    per_o = o.per_replica_per_s or 0.0
    if o.contention or per_o >= ceiling - 0.05:
        return f"at most {ceiling:.1f}/s, and carried {per_o:.1f}/s"
    return (
        f"carried {per_o:.1f}/s with its core(s) to itself (measured, not projected: its threads did not wait "
        f"for a core; the {ceiling:.1f}/s its CPU per task alone allows leaves out the time the process spends "
        f"off the CPU between tasks)"
    )


def _cause(chosen: FleetRow, other: FleetRow, profile: WorkerProfile | None) -> str:
    c, o = chosen.candidate, other.candidate
    per_o, per_c = o.per_replica_per_s or 0.0, c.per_replica_per_s or 0.0
    if o.pool == "solo":
        return (
            f"solo runs one task at a time and carried {per_o:.1f}/s; {c.pool} x{c.concurrency} carried {per_c:.1f}/s"
        )
    if o.cpu_bound and o.cpu_per_task_s and (c.cores_usable > o.cores_usable or not c.cpu_bound):
        ceiling = o.cores_usable / o.cpu_per_task_s
        where = ONE_CORE.get(o.pool, f"{o.cores_usable} core(s)")
        return (
            f"{o.pool} is CPU-bound: its tasks take {format_seconds(o.cpu_per_task_s)} of CPU each on "
            f"{o.cores_usable} core ({where}), {_carried(o, ceiling)}; {c.pool} x"
            f"{c.concurrency} uses {c.cores_usable} core(s) and carried {per_c:.1f}/s"
        )
    if o.concurrency < c.concurrency:
        return (
            f"{o.pool} fits {o.concurrency} slot(s) in {format_size(o.limit_bytes)} at {format_size(o.slot_bytes)} "
            f"each{_child_detail(o.pool, profile)} and carried {per_o:.1f}/s; {c.pool} fits {c.concurrency} at "
            f"{format_size(c.slot_bytes)} each ({_slot_kind(c.pool)}) and carried {per_c:.1f}/s"
        )
    return (
        f"at {format_size(o.limit_bytes)} {o.pool} x{o.concurrency} carried {per_o:.1f}/s, "
        f"{c.pool} x{c.concurrency} {per_c:.1f}/s"
    )


def _slot_kind(pool: str) -> str:
    return "a child process at its worst" if pool == "prefork" else f"a task's growth inside the one {pool} process"


def _child_detail(pool: str, profile: WorkerProfile | None) -> str:
    """Where a prefork child's cost comes from: its pages after the fork, the shared pages it copied."""
    if pool != "prefork" or profile is None:
        return f" ({_slot_kind(pool)})"
    idle, task = profile.child_start_bytes, profile.task_need_max
    started = "after the fork"
    if profile.startup and idle > profile.child_idle_uss_bytes:
        started = f"once started ({profile.startup.children} children starting together)"
    copied = profile.child_max_uss_bytes - idle - task
    if copied <= 0:
        return f" ({format_size(idle)} private {started} + {format_size(task)} for its largest task)"
    return (
        f" (a child's private pages grew from {format_size(idle)} {started} to "
        f"{format_size(profile.child_max_uss_bytes)}: {format_size(copied)} more than its largest task's "
        f"{format_size(task)}, pages it shared with the main process, copied as its tasks wrote to them)"
    )
