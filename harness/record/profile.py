"""What --profile adds to the record: memray's allocation sites at each profiled task's peak (or at
its kill), what memray could not see, and memray's own measured cost for the run
(oomlab.observe.profiling reads the captures into these)."""

from __future__ import annotations

from dataclasses import dataclass, field

from oomlab.record.typed_json import OMIT_NONE


@dataclass(frozen=True)
class AllocationSite:
    """Where memory was held: the nearest Python frame in the user's code (library frames inside it
    in `via`), and the native frames below the innermost Python frame."""

    function: str
    file: str
    line: int
    bytes: int
    allocations: int
    via: tuple[str, ...] = ()  # library Python frames between the site and the allocator
    native: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChildProcesses:
    """Child processes the task ran and waited for: memory memray cannot see."""

    ran: bool  # their page faults or CPU time rose during the task
    largest_peak_bytes: int | None  # the largest one's peak, when it set a new maximum for this process


@dataclass(frozen=True)
class TaskProfile:
    """The capture behind a task's sites (its last profiled execution): its pool child's capture,
    and the task's window in it (between the probe's marks at prerun and postrun)."""

    capture: str  # the pool child's capture file, relative to the run directory
    view: str  # high-water mark | last record (a killed task: what it held when the kernel struck)
    held_bytes: int  # what memray saw held at that moment
    memray_peak_bytes: int  # the high-water mark of what the task allocated in its window (oomlab's frames too)
    task_growth_bytes: int | None  # the task's RSS growth to its peak (or to the kill)
    killed_at_bytes: int | None  # the RSS the kernel reported, when the task was killed
    children: ChildProcesses | None  # None: the tracker never closed (the task was killed)
    overhead_s: float | None  # the two marks' time in the task (older runs: the tracker's start+stop)
    sites: list[AllocationSite] = field(default_factory=list)
    last_snapshot_before_kill_s: float | None = field(default=None, metadata=OMIT_NONE)  # a killed task's
    note: str | None = None  # why memray's view is not the whole story, in one sentence
    flamegraph: str | None = None  # memray's HTML flame graph, relative to the run directory
    executions: int = 1  # the task's executions that were profiled
    window: int | None = field(default=None, metadata=OMIT_NONE)  # the n-th window (from 0) in the capture


@dataclass(frozen=True)
class ProfileCost:
    """memray's cost per task, measured: a no-op task body bare and then tracked, with a window's two
    marks, in one pool child (median of each), the child's one tracker start, and the marks' time in
    the real tasks; a figure not measured is None, and absent from the JSON."""

    noop_runs: int | None = field(default=None, metadata=OMIT_NONE)
    noop_bare_s: float | None = field(default=None, metadata=OMIT_NONE)
    noop_tracked_s: float | None = field(default=None, metadata=OMIT_NONE)
    per_task_s: float | None = field(default=None, metadata=OMIT_NONE)
    setup_peak_bytes: int | None = field(default=None, metadata=OMIT_NONE)  # the first tracker sets memray up
    per_task_peak_bytes: int | float | None = field(default=None, metadata=OMIT_NONE)  # a median: may be a half
    start_stop_median_s: float | None = field(default=None, metadata=OMIT_NONE)  # older runs: a tracker per task
    start_stop_n: int | None = field(default=None, metadata=OMIT_NONE)
    tracker_start_s: float | None = field(default=None, metadata=OMIT_NONE)  # once per pool child, before any task
    marks_median_s: float | None = field(default=None, metadata=OMIT_NONE)  # the two marks in a profiled task
    marks_n: int | None = field(default=None, metadata=OMIT_NONE)
    native_traces: bool | None = field(default=None, metadata=OMIT_NONE)  # --profile-native


@dataclass(frozen=True)
class RunProfile:
    """The run's --profile: the tasks chosen, the captures read, memray's cost, and what could not be read."""

    tasks: list[str] = field(default_factory=list)
    captures: int = 0
    cost: ProfileCost | None = None
    read_errors: dict[str, str] = field(default_factory=dict)  # capture -> why it could not be read
