"""Per-task records as a stream: one JSON line per task in the run directory's tasks.jsonl, appended
as each task becomes final, with its exact peak (VmHWM reset at prerun, read at postrun). The
file only grows, so a run that dies mid-way leaves every task it finished readable."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

TASKS_FILE = "tasks.jsonl"


class TaskStream:
    def __init__(self, run_dir: str):
        self.path = os.path.join(run_dir, TASKS_FILE)
        self._handle = open(self.path, "a", buffering=1 << 16)  # open for the run's length
        self.written = 0

    def write(self, task: dict) -> None:
        self._handle.write(json.dumps(task, separators=(",", ":"), default=repr) + "\n")
        self.written += 1

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()


def iter_tasks(run_dir: str) -> Iterator[dict]:
    """Every task of a run, one dict each: those run.json holds (a plan run) and those streamed to
    tasks.jsonl (a load run), without holding the stream in memory."""
    try:
        with open(os.path.join(run_dir, "run.json")) as handle:
            yield from json.load(handle).get("tasks", [])
    except FileNotFoundError:
        pass
    yield from read_stream(run_dir)


def read_stream(run_dir: str) -> Iterator[dict]:
    """The tasks in tasks.jsonl, one at a time; a half-written last line (the run was killed while
    writing it) is skipped, and a run with no stream yields nothing."""
    try:
        with open(os.path.join(run_dir, TASKS_FILE)) as handle:
            for line in handle:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue
    except FileNotFoundError:
        return
