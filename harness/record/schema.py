"""The run record: typed dataclasses for everything a run saw, written to results/<run-id>/run.json.

run.json is rewritten atomically (write + rename) while the run goes on, so a run interrupted at any
moment, even by SIGKILL, leaves the last complete snapshot behind; analyses read only this record.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from oomlab.config.lab_cells import Cell
from oomlab.config.options import RunConfig
from oomlab.config.sizes import format_size
from oomlab.errors import BadInput
from oomlab.record.delivery import DeliveryVerdict, Depth, KillDetection, Location
from oomlab.record.descendants import AliveDescendant, Descendant, KilledDescendant
from oomlab.record.kinds import MemoryKinds
from oomlab.record.load import LoadSection
from oomlab.record.profile import AllocationSite, RunProfile, TaskProfile
from oomlab.record.reading import read_json
from oomlab.record.redact import mask_settings, mask_urls
from oomlab.record.status import STATUS_ROOM
from oomlab.record.typed_json import ShapeError, from_json, to_json
from oomlab.trust import check_trusted_dir, results_umask, write_private_atomic

SCHEMA = "oomlab.run/3"
# 3: every section typed and checked on reading; group.backend is group.placement; percentiles are
#    nearest-rank (a value really measured) everywhere; status may be timed_out, worker_lost or killed
# 2: child_uss_bytes (was child_uss_growth_bytes), delivery, state_history, restarts

RunStatus = Literal[
    "starting",
    "running",
    "complete",
    "worker_start_failed",
    "interrupted",
    "error",
    "timed_out",
    "worker_lost",
    "killed",
]
Outcome = Literal[
    "pending", "succeeded", "failed", "killed", "descendant_killed", "requeued", "stuck", "never_started", "poison"
]
Role = Literal["main", "child", "descendant"]
KillCause = Literal["oom", "oom_group"]


@dataclass
class Execution:
    """One run of a task in one process, from the probe's prerun/postrun pair."""

    pid: int
    started_mono: float
    started_wall: float
    start_rss_bytes: int | None
    finished_mono: float | None = None
    peak_rss_bytes: int | None = None  # VmHWM since the reset at prerun: exact
    end_rss_bytes: int | None = None
    ru_maxrss_bytes: int | None = None  # the process's lifetime peak (getrusage), never reset
    traced_peak_bytes: int | None = None  # tracemalloc's peak during the task (--tracemalloc)
    state: str | None = None
    killed: bool = False
    redelivered: bool | None = None  # the broker's flag on this delivery
    delivery_count: int | None = None  # RabbitMQ's x-delivery-count (quorum queues)
    retries: int | None = None  # Celery's retry count for this message
    parent_id: str | None = None  # Celery's links, as the task's request had them
    root_id: str | None = None
    group_id: str | None = None
    # the task's whole tree: its pool child's leaf memory cgroup (oomlab.probe.task_tree)
    peak_reset: bool = True  # False: another task shared the process when this one started
    shared_process: bool = False  # ran in the worker's main process (solo, threads, gevent, eventlet)
    in_flight: list[str] = field(default_factory=list)  # other tasks running in the same process meanwhile
    tree_start_bytes: int | None = None
    tree_peak_bytes: int | None = None
    tree_peak_exact: bool = False
    tree_note: str | None = None  # why there is no exact tree figure
    tree_end_bytes: int | None = None
    kinds_end: dict[str, int] | None = None  # the pool process's RSS by kind at the task's end
    tree_kinds_end: dict[str, int] | None = None  # the leaf's usage by kind at the task's end
    tree_kinds_start: dict[str, int] | None = None  # the leaf's usage by kind at the task's start
    descendants_alive: list[AliveDescendant] = field(default_factory=list)  # still running at the task's end
    reaped_descendant_peak_bytes: int | None = None  # ru_maxrss of reaped children, when it rose


@dataclass
class TaskRecord:
    id: str
    name: str
    label: str
    args: list[Any]
    sent_mono: float
    outcome: Outcome = "pending"
    state: str | None = None
    exception: str | None = None
    pid: int | None = None
    start_rss_bytes: int | None = None
    peak_rss_bytes: int | None = None
    peak_above_start_bytes: int | None = None
    peak_is_exact: bool = False
    traced_peak_bytes: int | None = None  # what Python's allocator saw, beside the RSS peak
    peak_note: str | None = None  # why peak_is_exact is false, in one sentence
    # the task's tree: the pool process and everything it started, from its leaf memory cgroup
    tree_peak_above_start_bytes: int | None = None
    tree_peak_is_exact: bool = False
    tree_note: str | None = None
    descendants: list[Descendant] = field(default_factory=list)  # the processes it started, each with its peak
    killed_descendants: list[KilledDescendant] = field(default_factory=list)  # OOM-killed processes it started
    memory_kinds: MemoryKinds = field(default_factory=MemoryKinds)  # anon/file/shmem: process_end, tree_end, at_kill
    # what a limit must hold for it: the tree's anon + shmem + kernel memory above its start, at its
    # highest (the leaf's memory.stat sampled during the task, read at its end, the kernel's at a kill);
    # never exact (sampled), `needs_note` says where it came from
    needs_above_start_bytes: int | None = None
    needs_is_exact: bool = False
    needs_note: str | None = None
    page_cache_above_start_bytes: int | None = None  # the most page cache the tree held above its start
    attempts: int = 0
    executions: list[Execution] = field(default_factory=list)
    state_history: list[tuple[float, str | None]] = field(
        default_factory=list
    )  # (monotonic time seen, state) per change
    top_allocations: list[AllocationSite] = field(default_factory=list)  # memray's sites at the peak (--profile)
    profile: TaskProfile | None = None  # the capture behind them: view, bytes held, what memray could not see
    # Celery's own links: the task that sent this one, the workflow's first task, its group or chord.
    # A task the worker sent itself (a chord's part, a callback, a retry) has sent_by "worker".
    parent_id: str | None = None
    root_id: str | None = None
    group_id: str | None = None
    sent_by: Literal["run", "worker"] = "run"
    chained: list[str] = field(default_factory=list)  # the task names a plan chained after it (TaskCall.then)

    def __repr__(self) -> str:
        """One line that fits an assertion message: who it is, what became of it, its figures."""

        def size(value: int | None) -> str:
            return "-" if value is None else f"+{format_size(value)}"

        label = f" {self.label!r}" if self.label else ""
        return (
            f"<TaskRecord {self.name}{label} {self.id[:8]} {self.outcome}: peak {size(self.peak_above_start_bytes)}"
            f"{'' if self.peak_is_exact else ' (not exact)'}, tree {size(self.tree_peak_above_start_bytes)}, "
            f"needs {size(self.needs_above_start_bytes)}, {self.attempts} attempt(s)>"
        )


@dataclass
class ProcessRecord:
    pid: int
    role: Role
    first_seen_mono: float
    last_seen_mono: float
    command: str = ""
    exited_mono: float | None = None
    exit_code: int | None = None  # a child's comes from worker_process_shutdown: 155 = recycled
    # main only (children reset VmHWM per task): its VmHWM, or the kernel's RSS figure if it was OOM-killed
    peak_rss_bytes: int | None = None
    max_rss_bytes: int | None = None
    max_pss_bytes: int | None = None
    max_uss_bytes: int | None = None
    last_rss_bytes: int | None = None
    tasks_at_peak: list[str] = field(default_factory=list)  # shared-process pools: tasks in flight at its peak
    peak_window_mono: tuple[float, float] | None = None  # when its peak was reached, between two probe readings
    owner_pid: int | None = None  # a descendant: the pool child whose leaf it was born in


@dataclass
class KillRecord:
    pid: int
    role: Role
    task_id: str | None
    task_name: str | None
    signal: str
    cause: KillCause  # oom: the kernel chose it | oom_group: killed with its whole group
    kernel_time_mono: float
    kernel_time_source: str  # kmsg | the earliest detector when /dev/kmsg is unreadable
    detected: dict[str, float] = field(default_factory=dict)  # detector -> seconds after kernel time
    detected_mono: dict[str, float] = field(default_factory=dict)
    rss_bytes: int | None = None
    during_startup: bool = False
    kernel_message: str | None = None
    command: str | None = None  # the victim's command (the kernel's comm, or its command line)
    owner_pid: int | None = None  # role descendant: the pool child whose task started it
    kinds: dict[str, int] | None = None  # anon/file/shmem RSS the kernel reported at the kill
    # the monitor's trace of the round that named the victim (woke, kmsg_read or signalled, named,
    # counters_read, round_done), seconds after the kernel time: where the detection time went
    stages: dict[str, float] = field(default_factory=dict)


@dataclass
class CeleryEvent:
    type: str
    received_mono: float
    timestamp_wall: float | None
    timestamp_mono: float | None  # the sender's clock mapped onto this host's monotonic clock
    hostname: str | None
    uuid: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Restart:
    """A worker main process started again under the restart policy, after `previous_pid` died."""

    pid: int
    started_mono: float
    previous_pid: int
    previous_exit_code: int | None
    exit_code: int | None = None


@dataclass
class Attachment:
    share: str  # the share directory of a worker oomlab did not start
    started_wall: float | None = None


@dataclass
class ContainerState:
    """Docker's own verdict on the worker's container, read before it was removed."""

    name: str
    oom_killed: bool | None
    exit_code: int | None
    restart_count: int
    image: str | None
    started_by: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class CrashLoop:
    restarts: int
    kills: int
    kill_intervals_s: list[float]


@dataclass
class WorkerSection:
    hostname: str = ""
    queue: str = ""
    broker: str | None = None  # masked: never a password
    backend: str | None = None
    celery_conf: dict[str, Any] = field(default_factory=dict)
    pid: int | None = None
    ready_mono: float | None = None
    ready_rss_bytes: int | None = None
    attached: Attachment | None = None
    restarts: list[Restart] = field(default_factory=list)
    exit_code: int | None = None
    stopped_with: Literal["SIGKILL", "SIGTERM"] | None = None
    observed_until_mono: float | None = None  # what follows is oomlab stopping the worker
    revoked: list[str] = field(default_factory=list)
    container: ContainerState | None = None
    crash_loop: CrashLoop | None = None
    tmpdir: str | None = None  # the worker's own TMPDIR (billiard's pymp-* dirs), removed at the end
    lost_cause: str | None = None  # Celery's last word when the main process exited mid-run


@dataclass
class GroupFiles:
    limit: str | None = None
    usage: str | None = None
    peak: str | None = None
    events: str | None = None


@dataclass
class GroupSection:
    """The memory cgroup that bounds the worker, whoever made it."""

    path: str = ""
    limit_bytes: int = 0
    oom_scope: Literal["process", "group"] = "process"
    placement: str = "cgroup"  # where the worker ran: cgroup | docker | attached
    cgroup_version: int | None = None
    group_kill: str | None = None  # who kills the whole group with --oom-scope group
    files: GroupFiles = field(default_factory=GroupFiles)
    cgroup_path: str | None = None
    peak_since: str | None = None
    oom_notice: str | None = None
    oom_kill_count: int | None = None
    replaced_mono: list[float] = field(default_factory=list)  # a restarted container's group, made anew


@dataclass
class Environment:
    kernel: str = ""
    machine: str = ""
    hostname: str = ""
    cgroup: str = ""
    cpus: int | None = None
    memory_total_bytes: int | None = None
    python: str = ""
    versions: dict[str, str | None] = field(default_factory=dict)
    detectors: dict[str, bool] = field(default_factory=dict)
    uid: int | None = None
    cleaned_up_after_previous_runs: list[str] = field(default_factory=list)
    kmsg_clock: dict[str, Any] | None = None
    cleanup_errors: list[str] = field(default_factory=list)
    celery_events_error: str | None = None
    timeline_error: str | None = None
    # the run's own result keys deleted from a Redis backend oomlab chose (the broker's database, with
    # --broker and no --result-backend); None: not done (a backend the user named, or the embedded one)
    result_keys_deleted: int | None = None
    # the highest oom_score_adj a pool child started with (0: the kernel's default, as in production;
    # OOMLAB_CHILD_OOM_SCORE_ADJ or a worker_process_init receiver raises it, so a kill takes a child
    # before the main process): None when no child said
    child_oom_score_adj: int | None = None


@dataclass
class Spread:
    """Nearest-rank quantiles of exact figures (values really measured, never interpolated)."""

    p50: int | float | None = None  # bytes are whole, seconds are not
    p95: int | float | None = None
    max: int | float | None = None
    n: int = 0


@dataclass
class LeafSummary:
    """How many tasks had their whole tree measured in a leaf cgroup, and why the others had none."""

    tasks_measured_exactly: int = 0
    why_not: list[str] = field(default_factory=list)


@dataclass
class Summary:
    outcomes: dict[str, int] = field(default_factory=dict)
    tasks: int = 0
    peak_rss_bytes: Spread = field(default_factory=Spread)
    peak_above_start_bytes: Spread = field(default_factory=Spread)
    traced_peak_bytes: Spread = field(default_factory=Spread)
    group_peak_bytes: int | None = None
    limit_bytes: int = 0
    group_peak_fraction: float | None = None
    kills: int = 0
    detection_seconds: dict[str, Spread] = field(default_factory=dict)
    main_peak_rss_bytes: int | None = None
    child_uss_bytes: Spread = field(default_factory=Spread)
    child_pss_bytes: Spread = field(default_factory=Spread)
    children: int = 0
    children_recycled: int = 0
    sampler: dict[str, float | int | None] = field(default_factory=dict)
    sum_rss_peak_bytes: int | None = None
    group_usage_at_sum_rss_peak_bytes: int | None = None
    peak_scope: str = "task"
    peak_rss_all_bytes: Spread = field(default_factory=Spread)  # killed tasks at the kernel's RSS too
    tree_peak_above_start_bytes: Spread = field(default_factory=Spread)  # exact task trees only
    needs_above_start_bytes: Spread = field(default_factory=Spread)  # unreclaimable, sampled (TaskRecord)
    page_cache_above_start_bytes: Spread = field(default_factory=Spread)
    descendant_kills: int = 0
    tasks_with_descendants: int = 0
    group_kinds_at_peak: dict[str, int] | None = None  # anon/file/shmem at the group's highest sample
    group_kinds_max: dict[str, int] = field(default_factory=dict)
    leaves: LeafSummary = field(default_factory=lambda: LeafSummary())
    findings: list[str] = field(default_factory=list)
    profile: RunProfile | None = None  # --profile: the tasks chosen, captures read, memray's measured cost


@dataclass
class DeliverySection:
    """The delivery lab's evidence and verdicts for its one task (oomlab.workflows.lab.observer)."""

    cell: Cell
    settings: dict[str, Any] = field(default_factory=dict)  # the lab's options that shaped this cell
    verdicts: list[DeliveryVerdict] = field(default_factory=list)
    locations: list[Location] = field(default_factory=list)  # where the broker had each message at the end
    detection: list[KillDetection] = field(default_factory=list)
    flower_worker_online: int | None = None  # Flower's gauge when the window closed
    worker_restarts: list[Restart] = field(default_factory=list)
    broker_samples: list[Depth] = field(default_factory=list)
    error: str | None = None  # why the broker could not be sampled or read


# sections a run may not have: written as null, and as {} by oomlab before they were typed
OPTIONAL_SECTIONS = ("delivery", "load")


@dataclass
class PoisonRecord:
    """A message OOM-killed on every delivery, stopped after --max-oom-redeliveries kills."""

    task_id: str
    task_name: str
    kills: int
    stopped_mono: float
    stopped_by: str  # how: "revoked" (Celery's remote control: the worker discards the next delivery)


@dataclass
class RunRecord:
    run_id: str
    config: RunConfig
    environment: Environment = field(default_factory=Environment)
    status: RunStatus = "starting"
    message: str | None = None
    started_wall: float = 0.0
    started_mono: float = 0.0
    ended_mono: float | None = None
    worker: WorkerSection = field(default_factory=WorkerSection)
    group: GroupSection = field(default_factory=GroupSection)
    tasks: list[TaskRecord] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)
    kills: list[KillRecord] = field(default_factory=list)
    celery_events: list[CeleryEvent] = field(default_factory=list)
    poison: list[PoisonRecord] = field(default_factory=list)  # messages stopped after repeated OOM kills
    summary: Summary = field(default_factory=Summary)
    delivery: DeliverySection | None = None  # a delivery lab cell's evidence and verdicts
    load: LoadSection | None = None  # a load run's: rates, latency, soak; its tasks in tasks.jsonl
    files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The record as written down: secret-named parameters and Celery settings masked here, and
        every URL's password by write_json_atomic (oomlab.record.redact)."""
        data = to_json(self)
        for settings, name in (
            (data["config"], "params"),
            (data["config"], "celery_conf"),
            (data["worker"], "celery_conf"),
        ):
            if isinstance(settings.get(name), dict):
                settings[name] = mask_settings(settings[name])
        return {"schema": SCHEMA, **data}

    @classmethod
    def from_json(cls, data: Any, source: str = "the record") -> RunRecord:
        """The record rebuilt from run.json's data; BadInput (one sentence) for another kind or
        version of file, or a field that does not fit."""
        if not isinstance(data, dict) or "schema" not in data:
            raise BadInput(f"{source} is not an oomlab run record (no schema)")
        if data["schema"] != SCHEMA:
            raise BadInput(f"{source} is a {data['schema']!r} file; this oomlab reads {SCHEMA} run records")
        fields = {k: v for k, v in data.items() if k != "schema"}
        fields.update({name: None for name in OPTIONAL_SECTIONS if fields.get(name) == {}})
        try:
            return from_json(cls, fields)
        except ShapeError as error:
            raise BadInput(f"{source} does not fit {SCHEMA}: {error}") from None


def write_json_atomic(path: str, data: Any, *, compact: bool = False) -> None:
    """Write + rename, so a reader (or a SIGKILL) only ever meets a whole file; NaN is refused. Every
    URL's password is masked, the file is private unless OOMLAB_UMASK shares results, and it is never
    written through a planted file (oomlab.record.redact, oomlab.trust). `compact`: one line, for a
    checkpoint each second (json's C encoder; an indented file takes its Python one, ten times slower)."""
    layout: dict[str, Any] = {"separators": (",", ":")} if compact else {"indent": 1}
    text = json.dumps(mask_urls(data), allow_nan=False, **layout)
    if compact:
        text += " " * STATUS_ROOM  # room to settle the status in place on a full disk (oomlab.record.status)
    write_private_atomic(path, text, mode=0o666 & ~results_umask())


def load_run(run_dir: str) -> RunRecord:
    """A run directory's record, checked: BadInput when it is missing, unreadable or not a run record."""
    path = os.path.join(run_dir, "run.json")
    if not os.path.lexists(path):
        raise BadInput(f"{run_dir} holds no run.json: give the run directory `oomlab run` printed")
    check_trusted_dir(run_dir, "run directory")  # what another user can write is never taken for a run
    return RunRecord.from_json(read_json(path, "the run record", follow=False), path)
