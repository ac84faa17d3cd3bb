"""Per-task records as a stream, and the one way oomlab reads a run's tasks.

A load run appends one JSON line per task to the run directory's tasks.jsonl as each task becomes
final, with its exact peak (VmHWM reset at prerun, read at postrun); the file only grows, so a run
that dies mid-way leaves every task it finished readable. `RunTasks` yields every task of any run as
a `TaskLine`: run.json's list (a plan run, a pytest session) read into the same shape, then the
stream one line at a time, each line checked against the schema. The gate, recommend, the report,
the pytest plugin and the export all read tasks through it, so none holds a million tasks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from oomlab.errors import BadInput
from oomlab.record.kinds import MemoryKinds
from oomlab.record.reading import MAX_LINE_BYTES, MAX_STREAM_BYTES, BoundedLines, open_file
from oomlab.record.schema import Outcome, RunRecord, TaskRecord, load_run
from oomlab.record.typed_json import from_json
from oomlab.trust import open_in_dir

TASKS_FILE = "tasks.jsonl"


@dataclass(slots=True)
class TaskLine:
    """One task as tasks.jsonl holds it (times on the host's monotonic clock, sizes in bytes)."""

    id: str
    name: str
    label: str = ""
    args: list[Any] = field(default_factory=list)
    sent_mono: float | None = None
    due_s: float | None = None  # open loop: when its send was due, seconds after the load began
    started_mono: float | None = None  # its first prerun
    finished_mono: float | None = None
    queue_wait_s: float | None = None  # sent -> first prerun
    run_time_s: float | None = None  # last prerun -> end
    end_to_end_s: float | None = None  # sent -> end
    outcome: Outcome = "pending"
    state: str | None = None
    exception: str | None = None
    pid: int | None = None
    attempts: int = 0
    start_rss_bytes: int | None = None
    peak_rss_bytes: int | None = None  # exact VmHWM, or a killed task's RSS at the kill (not exact)
    peak_above_start_bytes: int | None = None
    peak_is_exact: bool = False
    # unreclaimable (anon + shmem + kernel) above its start, and page cache above its start, in its
    # tree: sampled during the task and read at its end or kill, by one rule (oomlab.assemble.needs);
    # `needs_note` says which readings it rests on (never exact)
    needs_above_start_bytes: int | None = None
    page_cache_above_start_bytes: int | None = None
    needs_note: str | None = None
    # its tree (its pool child's leaf) at its peak above its start; a load run's line before these
    # were streamed has none
    tree_peak_above_start_bytes: int | None = None
    tree_peak_is_exact: bool = False
    memory_kinds: MemoryKinds = field(default_factory=MemoryKinds)
    # Celery's links: the task that sent it, the workflow's first task, its group or chord
    parent_id: str | None = None
    root_id: str | None = None
    group_id: str | None = None
    sent_by: Literal["run", "worker"] = "run"  # "worker": a task the worker sent itself

    @property
    def growth(self) -> int | None:
        """Its growth above its start: its tree's where the kernel measured it exactly, else its pool
        process's VmHWM above its start (exact tasks only)."""
        if self.tree_peak_is_exact and self.tree_peak_above_start_bytes is not None:
            return self.tree_peak_above_start_bytes
        return self.peak_above_start_bytes if self.peak_is_exact else None

    @property
    def last_started_mono(self) -> float | None:
        """Its latest prerun (where its run time starts)."""
        if self.finished_mono is not None and self.run_time_s is not None:
            return self.finished_mono - self.run_time_s
        return self.started_mono


STREAM_FIELDS = tuple(name for name in TaskLine.__dataclass_fields__ if not name.startswith("memory_"))


def line_of(task: TaskRecord) -> TaskLine:
    """A plan run's task record in the stream's shape. A task oomlab did not send (a pytest
    session's) has its first start as its send time: its queue wait is unknown, not zero."""
    runs = task.executions
    started = runs[0].started_mono if runs else None
    began, ended = (runs[-1].started_mono, runs[-1].finished_mono) if runs else (None, None)
    unsent = started is not None and task.sent_mono == started
    return TaskLine(
        id=task.id,
        name=task.name,
        label=task.label,
        args=task.args,
        sent_mono=task.sent_mono,
        started_mono=started,
        finished_mono=ended,
        queue_wait_s=None if started is None or unsent else started - task.sent_mono,
        run_time_s=None if began is None or ended is None else ended - began,
        end_to_end_s=None if ended is None or unsent else ended - task.sent_mono,
        outcome=task.outcome,
        state=task.state,
        exception=task.exception,
        pid=task.pid,
        attempts=task.attempts,
        start_rss_bytes=task.start_rss_bytes,
        peak_rss_bytes=task.peak_rss_bytes,
        peak_above_start_bytes=task.peak_above_start_bytes,
        peak_is_exact=task.peak_is_exact,
        needs_above_start_bytes=task.needs_above_start_bytes,
        page_cache_above_start_bytes=task.page_cache_above_start_bytes,
        needs_note=task.needs_note,
        tree_peak_above_start_bytes=task.tree_peak_above_start_bytes,
        tree_peak_is_exact=task.tree_peak_is_exact,
        memory_kinds=task.memory_kinds,
        parent_id=task.parent_id,
        root_id=task.root_id,
        group_id=task.group_id,
        sent_by=task.sent_by,
    )


class TaskStream:
    """The writer: one line per final task, buffered, flushed at each checkpoint."""

    def __init__(self, run_dir: str):
        self.path = os.path.join(run_dir, TASKS_FILE)
        self._handle = open_in_dir(self.path, "a", buffering=1 << 16)  # open for the run's length
        self.written = 0

    def write(self, task: TaskLine) -> None:
        line = {name: getattr(task, name) for name in STREAM_FIELDS}
        self._handle.write(json.dumps(line, separators=(",", ":"), default=repr) + "\n")
        self.written += 1

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()


@dataclass
class StreamCheck:
    """What reading a stream found besides tasks. A malformed line (not JSON, or not a task) is
    counted and named, never passed on; a half-written last line is what a run killed while
    writing leaves, expected and not counted as malformed."""

    path: str
    lines: int = 0  # tasks read from the stream
    malformed: int = 0
    first_malformed: str | None = None  # "line 17: peak_rss_bytes: 'x' is not an integer"
    cut_last_line: bool = False
    capped: bool = False  # the stream was longer than MAX_STREAM_BYTES: the rest is left out

    def problem(self) -> str | None:
        """One sentence when lines were skipped (None: every line was a task)."""
        rest = f"; only its first {MAX_STREAM_BYTES >> 30} GiB were read" if self.capped else ""
        if not self.malformed:
            return f"{self.path}: only its first {MAX_STREAM_BYTES >> 30} GiB were read" if self.capped else None
        return (
            f"{self.path}: {self.malformed} malformed line(s) skipped, not counted in these figures "
            f"(first: {self.first_malformed}){rest}"
        )

    def note(self) -> str | None:
        """The sentence above, or the expected half-written last line, for a reader to show."""
        if self.malformed or self.capped:
            return self.problem()
        if self.cut_last_line:
            return f"{self.path}: its last line was half-written (the run was stopped while writing it) and is left out"
        return None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse(raw: bytes) -> TaskLine:
    """One line as a TaskLine; ValueError (a ShapeError, a decoding error) naming what does not fit."""
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    return from_json(TaskLine, data)


def read_lines(path: str, check: StreamCheck) -> Iterator[TaskLine]:
    """The stream at `path` one task at a time (nothing when there is no stream), counting into
    `check` what is not a task."""
    try:
        handle = open_file(path)
    except FileNotFoundError:
        return
    except OSError as error:
        raise BadInput(f"cannot read {path}: {error.strerror or error}") from None
    with handle:
        lines = BoundedLines(handle)
        for number, raw in enumerate(lines, 1):
            try:
                if raw is None:
                    raise ValueError(f"longer than {MAX_LINE_BYTES // 1024} KiB")
                task = _parse(raw)
            except ValueError as error:  # a ShapeError too
                if raw is not None and not raw.endswith(b"\n"):  # only the last line lacks one: cut by a kill
                    check.cut_last_line = True
                    continue
                check.malformed += 1
                check.first_malformed = check.first_malformed or f"line {number}: {_short(str(error))}"
                continue
            check.lines += 1
            yield task
        check.capped = lines.capped


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RunTasks:
    """Every task of a run as TaskLines: run.json's list, then tasks.jsonl line by line. Iterate it
    as often as needed: each pass reads the stream again, holding one line at a time, and leaves
    what it found wrong in `check`."""

    def __init__(self, run_dir: str, record: RunRecord | None = None):
        self.run_dir = run_dir
        self.record = record if record is not None else load_run(run_dir)
        self.check = StreamCheck(os.path.join(run_dir, TASKS_FILE))

    def __iter__(self) -> Iterator[TaskLine]:
        for task in self.record.tasks:
            yield line_of(task)
        yield from self.streamed()

    def streamed(self) -> Iterator[TaskLine]:
        """The stream's tasks alone (a load run's; a plan run has none)."""
        self.check = StreamCheck(self.check.path)
        return streamed_tasks(self.check, self.record.kills)


class Kill(Protocol):
    task_id: str | None
    rss_bytes: int | None


def streamed_tasks(check: StreamCheck, kills: Iterable[Kill]) -> Iterator[TaskLine]:
    """The stream at `check.path`, each killed task with the kernel's RSS at its kill (from the
    record's `kills`) where its line has none: a kill may be attributed after its line was written."""
    at_kill = {kill.task_id: kill.rss_bytes for kill in kills if kill.task_id and kill.rss_bytes is not None}
    for line in read_lines(check.path, check):
        if line.outcome == "killed" and line.peak_rss_bytes is None:
            line.peak_rss_bytes = at_kill.get(line.id)
        yield line
