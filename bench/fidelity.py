"""Peak fidelity: tasks that spike to 200 MiB for 1, 10 and 100 ms. The growth of RSS above the start
each tool reports, against the kernel's own VmHWM (reset before the call, read after it) for the
same call: oomlab (VmHWM per task in a real worker), memory_profiler's memory_usage at its default
0.1 s interval and at 0.01 s, psutil polled every 10 ms, and memray's high-water mark (heap)."""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from dataclasses import replace

import psutil

from bench import report
from bench.spike import spike
from harness import procfs
from harness.config import RunOptions, resolve
from harness.runner import Run
from harness.scenario import load_scenario

MIB = 1 << 20
SPIKE_MIB = 200
HOLDS = (0.001, 0.01, 0.1)
REPEAT = 3
TARGET_ERROR = 1.0  # percent


def kernel_truth(hold: float) -> int:
    """The call's growth as the kernel counts it: VmHWM after the call minus RSS before it."""
    procfs.reset_peak("self")
    start = procfs.rss_bytes("self") or 0
    spike(SPIKE_MIB, hold)
    return procfs.status_fields("self", ("VmHWM",))["VmHWM"] - start


def memory_profiler_growth(hold: float, interval: float) -> int:
    from memory_profiler import memory_usage

    start = procfs.rss_bytes("self") or 0
    peak_mib = memory_usage((spike, (SPIKE_MIB, hold)), interval=interval, max_usage=True, include_children=False)
    return int(peak_mib * MIB) - start


def psutil_growth(hold: float, interval: float = 0.01) -> int:
    process = psutil.Process()
    start = process.memory_info().rss
    peak, done = [start], threading.Event()

    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(interval)

    thread = threading.Thread(target=poll)
    thread.start()
    spike(SPIKE_MIB, hold)
    done.set()
    thread.join()
    return peak[0] - start


def memray_growth(hold: float) -> int:
    import memray

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "spike.bin")
        with memray.Tracker(path):
            spike(SPIKE_MIB, hold)
        return memray.FileReader(path).metadata.peak_memory


def oomlab_growth(results_dir: str) -> dict[float, list[int]]:
    """Per-task peak above start from a real worker run (the probe's VmHWM reset/read)."""
    scenario = load_scenario(os.path.join(os.path.dirname(__file__), "spike.py"))
    config = resolve(scenario, RunOptions(memory="1GiB", concurrency=1, results_dir=results_dir))
    config = replace(config, params={**config.params, "mib": SPIKE_MIB, "holds": list(HOLDS), "repeat": REPEAT})
    run = Run(scenario, config)
    run.execute()
    by_hold: dict[float, list[int]] = {}
    for task in run.record.tasks:
        if task.peak_above_start_bytes is not None:
            by_hold.setdefault(task.args[1], []).append(task.peak_above_start_bytes)
    return by_hold


def main(results_dir: str) -> dict:
    out = report.console()
    tools = {
        "memory_profiler (0.1 s, default)": lambda hold: memory_profiler_growth(hold, 0.1),
        "memory_profiler (0.01 s)": lambda hold: memory_profiler_growth(hold, 0.01),
        "psutil polling (10 ms)": psutil_growth,
        "memray high-water mark": memray_growth,
    }
    oomlab = oomlab_growth(results_dir)
    rows: list[list[str]] = []
    data: dict[str, dict[str, dict[str, float]]] = {}
    for hold in HOLDS:
        truth = statistics.median(kernel_truth(hold) for _ in range(REPEAT))
        figures = {"oomlab (VmHWM per task)": statistics.median(oomlab[hold])}
        for name, measure in tools.items():
            figures[name] = statistics.median(measure(hold) for _ in range(REPEAT))
        for name, value in figures.items():
            error = abs(value - truth) / truth * 100
            rows.append(
                [f"{hold * 1000:g} ms", name, f"{value / MIB:.1f} MiB", f"{truth / MIB:.1f} MiB", report.pct(error)]
            )
            data.setdefault(f"{hold}", {})[name] = {
                "reported_bytes": value,
                "kernel_bytes": truth,
                "error_percent": error,
            }
    report.table(
        f"peak fidelity: a {SPIKE_MIB} MiB spike held for 1, 10, 100 ms (median of {REPEAT})",
        ["spike held", "tool", "reported growth", "kernel (VmHWM)", "error"],
        rows,
        out,
    )
    worst = max(v["oomlab (VmHWM per task)"]["error_percent"] for v in data.values())
    report.target(
        out,
        f"oomlab's per-task peak error ≤ {TARGET_ERROR:g} % at every spike length (worst {worst:.2f} %)",
        worst <= TARGET_ERROR,
    )
    return {"spike_mib": SPIKE_MIB, "by_hold": data, "worst_oomlab_error_percent": worst}
