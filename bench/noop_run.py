"""One real `oomlab run noop ...` through the CLI, as the load benchmarks run it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from oomlab.record.load import LoadSection
from oomlab.record.schema import load_run


def oomlab_run(results_dir: str, *args: str, timeout: float = 3600) -> tuple[LoadSection, str, float]:
    """(run.json's load section, run directory, wall seconds) of one real run through the CLI."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "oomlab", "run", "noop", "--results", results_dir, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    elapsed = time.monotonic() - started
    run_dir = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not os.path.isdir(run_dir):
        raise RuntimeError(f"oomlab run {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    load = load_run(run_dir).load
    if load is None:
        raise RuntimeError(f"oomlab run {' '.join(args)} wrote no load section in {run_dir}")
    return load, run_dir, elapsed
