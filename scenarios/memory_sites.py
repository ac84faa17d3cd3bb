"""Tasks whose memory comes from known places, for `--profile`: one Python function, one numpy call,
one task that grows until the kernel kills it, and one that runs a program memray cannot see."""

from __future__ import annotations

import os
import subprocess
import time

import numpy
from oomlab import Param, Plan, RunContext, TaskCall
from oomlab.scenarios._common import MIB, scenario_app

description = "memory from known lines (Python, numpy, a killed task, a child program): try --profile all"
app = scenario_app("memory-sites")
PARAMS = [
    Param("py_mib", 40.0, "MiB the Python function allocates"),
    Param("np_mib", 24.0, "MiB the numpy array holds"),
    Param("hold", 0.2, "seconds the first task holds both"),
    Param("kill", True, "also run a task that grows until the kernel kills it"),
    Param("chunk_mib", 4, "MiB the growing task adds at a time"),
    Param("program_mib", 0, "MiB a child program (dd) allocates in a third task (0: none)"),
    Param("noops", 0, "no-op tasks to add (to time memray's cost on many executions)"),
]
DEFAULTS = {"memory": "256MiB", "concurrency": 1}


def python_rows(mib: float) -> bytes:
    return b"\x01" * int(mib * MIB)  # site: python_rows


def numpy_block(mib: float) -> numpy.ndarray:
    return numpy.ones(int(mib * MIB), dtype=numpy.uint8)  # site: numpy_block


@app.task(name="memory_sites.both")
def both(py_mib: float, np_mib: float, hold: float) -> int:
    rows = python_rows(py_mib)
    block = numpy_block(np_mib)
    time.sleep(hold)
    return len(rows) + block.nbytes


@app.task(name="memory_sites.hoard")
def hoard(chunk_mib: int, limit_bytes: int, progress_path: str) -> None:
    """Grows until killed; after each chunk the bytes held so far go to `progress_path` with one
    pwrite(2), which survives the SIGKILL: what the capture must show at its last record."""
    held: list[bytes] = []
    fd = os.open(progress_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    while len(held) * chunk_mib * MIB < 4 * limit_bytes:
        held.append(b"\x01" * (chunk_mib * MIB))  # site: hoard
        os.pwrite(fd, b"%20d" % (len(held) * chunk_mib * MIB), 0)
    raise RuntimeError(f"grew to 4x the {limit_bytes} byte limit without being killed: is the limit in force?")


@app.task(name="memory_sites.program")
def program(mib: int) -> None:
    """dd's buffer is `mib` MiB, filled from /dev/zero: memory in a program memray cannot see."""
    subprocess.run(["dd", "if=/dev/zero", "of=/dev/null", f"bs={mib}M", "count=2"], check=True, capture_output=True)


@app.task(name="memory_sites.noop")
def noop() -> None:
    return None


def plan(ctx: RunContext) -> Plan:
    params = ctx.params
    calls = [TaskCall(both.name, (params["py_mib"], params["np_mib"], params["hold"]), label="python + numpy")]
    calls += [TaskCall(noop.name, label="no-op") for _ in range(params["noops"])]
    if params["program_mib"]:
        calls.append(TaskCall(program.name, (params["program_mib"],), label=f"dd {params['program_mib']} MiB"))
    if params["kill"]:
        progress = os.path.join(ctx.run_dir, "hoard.progress")
        calls.append(TaskCall(hoard.name, (params["chunk_mib"], ctx.limit_bytes, progress), label="grows until killed"))
    return Plan(calls, timeout=60.0)
