"""`oomlab export RUN_DIR --parquet OUT`: a run's tasks (run.json's list and a load run's tasks.jsonl)
as one Parquet file for pandas; prints its path."""

from __future__ import annotations

import argparse
import os
import sys

from oomlab.errors import EXIT_OK, BadInput, ResultsUnwritable
from oomlab.record.export import write_parquet
from oomlab.record.stream import RunTasks
from oomlab.trust import output_dir
from oomlab.workflows.gate.baseline import read_run_record


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="write a run's tasks as a Parquet file (pandas.read_parquet)")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run directory `oomlab run` printed")
    parser.add_argument(
        "--parquet",
        required=True,
        metavar="OUT",
        help="the Parquet file to write, one row per task (needs pip install 'oomlab[parquet]')",
    )
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if os.path.isdir(args.parquet):
        raise BadInput(f"{args.parquet} is a directory; give a file path, e.g. {args.parquet}/tasks.parquet")
    output_dir(args.parquet, "directory for the export")  # before anything is read or made
    tasks = RunTasks(args.run_dir, read_run_record(args.run_dir))
    try:
        rows = write_parquet(tasks, args.parquet)
    except OSError as exc:  # its directory missing or not writable, a full disk
        raise ResultsUnwritable(f"cannot write {args.parquet}: {exc.strerror or exc}") from None
    note = tasks.check.note()
    if note:
        print(f"oomlab: note: {note}", file=sys.stderr)
    print(f"{rows} tasks", file=sys.stderr)
    print(args.parquet, flush=True)
    return EXIT_OK
