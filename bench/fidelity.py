"""Peak fidelity, a matrix: kinds of task memory (bench/memory_kinds.py: Python objects, numpy, a
program run as a subprocess, a billiard pool, a forked child, a mapped file, shmem, malloc never
touched, a pre-faulted ~1 ms spike) × tools (oomlab's per-task tree peak from a real worker run,
memray with native traces and follow_fork, pytest-memray's limit_memory, memory_profiler with
include_children, tracemalloc, psutil polling every 10 ms), each against the kernel's figure: the
peak of a fresh memory cgroup the bare kind ran in (bench/fidelity_cell.py), which counts every
page the kind's whole process tree made resident, and nothing else."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, replace
from typing import Any

from oomlab.config.options import RunOptions, resolve
from oomlab.config.scenario import load_scenario
from oomlab.record.stream import line_of
from oomlab.run.runner import Run
from oomlab.worker.limits.base import CgroupBackend, read_int
from oomlab.worker.limits.base import _rmdir_when_empty as rmdir_when_empty

from bench import report
from bench.fidelity_cell import TOOLS
from bench.group import leased_group
from bench.memory_kinds import KINDS, MIB, spike_lifetime

SIZE_MIB = 32
REPEAT = 3  # bare runs per kind (the kernel's figure is their median), and oomlab's calls per kind
OOMLAB = "oomlab (task tree)"
TARGET_PERCENT, TARGET_BYTES = 1.0, MIB  # oomlab within 1 % or 1 MiB of the kernel, on every kind


@dataclass(frozen=True)
class Cell:
    reported: int | None  # bytes the tool says the kind grew by (None: the tool says nothing)
    kernel: int  # bytes the kind's fresh cgroup peaked at

    @property
    def error_bytes(self) -> int | None:
        return None if self.reported is None else self.reported - self.kernel

    @property
    def error_percent(self) -> float | None:
        error = self.error_bytes
        return None if error is None or self.kernel < MIB else 100.0 * error / self.kernel

    @property
    def on_target(self) -> bool:
        error = self.error_bytes
        return error is not None and (abs(error) <= TARGET_BYTES or abs(self.error_percent or 0) <= TARGET_PERCENT)


def show(cell: Cell) -> str:
    """'32.1 MiB (+0.3 %)', or the error in MiB where the kernel's figure is under 1 MiB."""
    if cell.reported is None or cell.error_bytes is None:
        return "-"
    error = f"{cell.error_percent:+.1f} %" if cell.error_percent is not None else f"{cell.error_bytes / MIB:+.1f} MiB"
    return f"{cell.reported / MIB:.1f} MiB ({error})"


def cell_peak(group: CgroupBackend, name: str) -> int:
    """The peak of a cgroup made under `group` since it was made (it starts empty)."""
    leaf = group.file(name)
    peak = read_int(os.path.join(leaf, group.peak_file))
    if peak is None:
        raise RuntimeError(f"cannot read {group.peak_file} of {leaf}")
    return peak


def run_cell(group: CgroupBackend, tool: str, kind: str, mib: int, index: int) -> tuple[int | None, int]:
    """(the tool's figure, the kernel's): the cell's process moves into a fresh cgroup once it has
    imported everything, so the cgroup is charged only with what the kind (and the tool) make."""
    name = f"cell-{index}"
    leaf = group.file(name)
    os.mkdir(leaf)
    try:
        cell = subprocess.Popen(
            [sys.executable, "-m", "bench.fidelity_cell", tool, kind, str(mib)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert cell.stdin is not None and cell.stdout is not None
        if cell.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the {tool} cell for {kind} did not start (exit {cell.wait()})")
        with open(os.path.join(leaf, "cgroup.procs"), "w") as procs:
            procs.write(str(cell.pid))
        cell.stdin.write("go\n")
        cell.stdin.flush()
        line = cell.stdout.readline()
        if cell.wait(timeout=120) != 0 or not line:
            raise RuntimeError(f"the {tool} cell for {kind} failed (exit {cell.returncode})")
        reported: int | None = json.loads(line)["reported_bytes"]
        return reported, cell_peak(group, name)
    finally:
        rmdir_when_empty(leaf)


def oomlab_growth(results_dir: str, mib: int, kinds: list[str], repeat: int) -> dict[str, int]:
    """Each kind's median per-task growth from a real worker run (its tree's where exact)."""
    scenario = load_scenario(os.path.join(os.path.dirname(__file__), "fidelity_tasks.py"))
    config = resolve(scenario, RunOptions(memory="512MiB", concurrency=1, results_dir=results_dir))
    config = replace(config, params={**config.params, "mib": mib, "kinds": kinds, "repeat": repeat})
    run = Run(scenario, config)
    run.execute()
    by_kind: dict[str, list[int]] = {}
    for task in run.record.tasks:
        growth = line_of(task).growth
        if growth is not None and task.outcome == "succeeded":
            by_kind.setdefault(str(task.args[0]), []).append(growth)
    missing = sorted(set(kinds) - set(by_kind))
    if missing:
        raise RuntimeError(f"oomlab measured no task of {', '.join(missing)}: see {run.run_dir}")
    return {kind: int(statistics.median(values)) for kind, values in by_kind.items()}


def measure(
    results_dir: str,
    mib: int = SIZE_MIB,
    kinds: list[str] | None = None,
    tools: list[str] | None = None,
    repeat: int = REPEAT,
) -> dict[str, dict[str, Cell]]:
    """The matrix: kind → tool → cell (every kind and tool unless fewer are given, e.g. by a test)."""
    kinds = kinds or list(KINDS)
    tools = tools if tools is not None else [tool for tool in TOOLS if tool != "bare"]
    matrix: dict[str, dict[str, Cell]] = {}
    with leased_group("fidelity", 1 << 30) as (_, group):
        group.prepare_leaves()
        index = 0
        for kind in kinds:
            runs = []
            for _ in range(repeat):
                runs.append(run_cell(group, "bare", kind, mib, index)[1])
                index += 1
            kernel = int(statistics.median(runs))
            matrix[kind] = {}
            for tool in tools:
                matrix[kind][tool] = Cell(run_cell(group, tool, kind, mib, index)[0], kernel)
                index += 1
    for kind, growth in oomlab_growth(results_dir, mib, kinds, repeat).items():
        matrix[kind] = {OOMLAB: Cell(growth, next(iter(matrix[kind].values())).kernel), **matrix[kind]}
    return matrix


def main(results_dir: str) -> dict[str, Any]:
    out = report.console()
    lifetime = statistics.median(spike_lifetime(SIZE_MIB) for _ in range(5))
    matrix = measure(results_dir)
    tools = list(next(iter(matrix.values())))
    rows = [
        [kind, f"{next(iter(cells.values())).kernel / MIB:.1f} MiB", *(show(cells[tool]) for tool in tools)]
        for kind, cells in matrix.items()
    ]
    report.table(
        f"peak fidelity: each kind at {SIZE_MIB} MiB, growth each tool reports (error against the kernel)",
        ["kind", "kernel (fresh cgroup)", *tools],
        rows,
        out,
    )
    out.print(f"the spike lasts {lifetime * 1000:.1f} ms from mmap(MAP_POPULATE) to munmap (median of 5)")
    missed = [kind for kind, cells in matrix.items() if not cells[OOMLAB].on_target]
    report.target(
        out,
        f"oomlab within {TARGET_PERCENT:g} % or {TARGET_BYTES // MIB} MiB of the kernel on every kind"
        + (f" (missed: {', '.join(missed)})" if missed else ""),
        not missed,
    )
    return saved(matrix, lifetime, missed)


def saved(matrix: dict[str, dict[str, Cell]], lifetime: float, missed: list[str]) -> dict[str, Any]:
    """The figures saved as JSON: every cell's reported and kernel bytes and its error."""
    return {
        "size_mib": SIZE_MIB,
        "spike_lifetime_s": lifetime,
        "matrix": {
            kind: {
                tool: {
                    "reported_bytes": cell.reported,
                    "kernel_bytes": cell.kernel,
                    "error_bytes": cell.error_bytes,
                    "error_percent": cell.error_percent,
                }
                for tool, cell in cells.items()
            }
            for kind, cells in matrix.items()
        },
        "oomlab_on_target": not missed,
    }
