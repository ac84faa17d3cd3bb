"""Sampler cost: the CPU the sampler's own thread uses at 100 Hz (RSS every tick, PSS/USS twice a
second) while it watches 1, 8, 32 and 64 Python processes of about 30 MiB in a cgroup, as a share
of one core, from its own thread CPU clock."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

from oomlab.observe.sampler import Sampler

from bench import report
from bench.group import leased_group

COUNTS = (1, 8, 32, 64)
SECONDS = 5.0
TARGET = 10.0  # percent of one core at 64 processes
HOLDER = "import time; block = b'\\x01' * (24 << 20); time.sleep(600)"


def cost_for(count: int) -> dict:
    processes = []
    with leased_group("bench-sampler", 8 << 30) as (lease, group):
        try:
            for _ in range(count):
                processes.append(subprocess.Popen([sys.executable, "-c", HOLDER]))
                _join(group, processes[-1].pid)
                lease.add_process(processes[-1].pid)
            time.sleep(1.0)  # let them allocate
            with tempfile.TemporaryDirectory() as tmp:
                sampler = Sampler(group, tmp, rss_hz=100.0)
                started = time.monotonic()
                sampler.start()
                time.sleep(SECONDS)
                sampler.stop()
                wall = time.monotonic() - started
        finally:
            for process in processes:
                process.kill()
                process.wait()
    cost = sampler.cost.as_dict()
    return {
        "processes": count,
        "core_percent": sampler.cost.cpu_seconds / wall * 100,
        "ticks_per_second": cost["ticks"] / wall,
        **cost,
    }


def _join(group, pid: int) -> None:
    with open(group.procs_file, "w") as handle:
        handle.write(str(pid))


def main(results_dir: str) -> dict:
    out = report.console()
    figures = [cost_for(count) for count in COUNTS]
    rows = [
        [
            f["processes"],
            f"{f['core_percent']:.2f} %",
            f"{f['ticks_per_second']:.0f}",
            f"{f['cpu_us_per_rss_process_sample']} µs",
            f"{f['cpu_us_per_smaps_process_sample']} µs",
        ]
        for f in figures
    ]
    report.table(
        f"sampler cost at 100 Hz over {SECONDS:g} s",
        ["processes", "of one core", "ticks/s", "per RSS sample", "per RSS+PSS/USS sample"],
        rows,
        out,
    )
    at64 = figures[-1]["core_percent"]
    report.target(out, f"sampler ≤ {TARGET:g} % of one core at 64 processes ({at64:.2f} %)", at64 <= TARGET)
    return {"figures": figures}
