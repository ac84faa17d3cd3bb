"""Every benchmark saves what it prints: each one's result, built on a tiny input the way the
benchmark builds it, goes through `bench.report.save` and reads back as the same JSON (a figure
that is a dataclass, a tuple or a nested dict must not crash the save after minutes of measuring)."""

from __future__ import annotations

import io
import json

import pytest
from oomlab.record.load import Schedule
from oomlab.record.schema import KillRecord, Spread
from oomlab.record.typed_json import to_json
from rich.console import Console

from bench import __main__ as bench_main
from bench import agent_cost, detection, fidelity, load_cost, overhead, report, saturation, stream


def _kill(pid: int, role: str, source: str, **detected: float) -> dict:
    record = KillRecord(pid, role, "t1", "bench.grow", "SIGKILL", "oom", 10.0, source)  # type: ignore[arg-type]
    record.detected = detected
    record.stages = {"woke": 0.0002, "named": detected.get("oomlab", 0.0)}
    return to_json(record)


def _detection() -> dict:
    children = [_kill(11, "child", "kmsg", oomlab=0.001, celery_worker_lost=0.3, celery_pool_noticed=0.29)]
    workers = [_kill(12, "main", "oomlab_group_kill", oomlab=0.0001, pidfd=0.04, celery_heartbeat_expiry=3.4)]
    data = detection.summarize(children, workers)
    detection.show(data, report.console())
    return data


def _fidelity() -> dict:
    matrix = {"C extension (numpy)": {fidelity.OOMLAB: fidelity.Cell(33 << 20, 32 << 20)}}
    return fidelity.saved(matrix, 0.004, [])


def _load() -> dict:
    figures = [
        {"tasks": n, "oomlab_cpu_seconds": n / 1e3, "oomlab_peak_rss_bytes": 40 << 20, "tasks_jsonl_bytes": n * 300}
        for n in (10, 20)
    ]
    schedule = Schedule(500.0, 499.0, -0.2)
    sat = _saturation()
    return {
        "schedule": {"asked_per_s": 500.0, "lateness_s": to_json(schedule.lateness_s)},
        "harness_cost": figures,
        "projection": load_cost.projection(figures),
        "saturation": sat,
    }


def _agent(container: dict | None = None) -> dict:
    rounds = {
        "bare": [{"per_s": 400.0, "pool_cpu_s_per_task": 0.0012}],
        "agent": [
            {"per_s": 396.0, "pool_cpu_s_per_task": 0.00125, "agent_rss_bytes": 50 << 20, "agent_uss_bytes": 40 << 20}
        ],
    }
    found = {"kills": 2, "detection_s": [0.003, 0.004], "agent_rss_bytes": 51 << 20, "agent_uss_bytes": 41 << 20}
    data = agent_cost.summarize(rounds, found, None, container or _container())
    agent_cost.show(data, report.console())
    return data


def _container() -> dict:
    """The container part's figures, two kills, as bench/agent_container.py returns them."""
    clock = {"same_time_namespace": True, "host_before": 10.0, "container": 10.1, "host_after": 10.2}
    return {"kills": 2, "detection_s": [0.02, 0.03], "unpaired": [], "victim_gone_s": [0.015, 0.025],
            "agent_after_exit_s": [0.005, 0.005], "clock_check": clock,
            "kernel_clock": {"offset_s": 0.0014, "end_offset_s": 0.0014, "drift_us_per_s": 1.2},
            "agent_rss_bytes": 42 << 20, "agent_uss_bytes": 32 << 20, "image": "oomlab-worker:x", "limit_bytes": 256 << 20}  # fmt: skip


def _saturation() -> dict:
    modes = (saturation.BARE, saturation.BATCH, saturation.CLOSED, saturation.OPEN)
    rates = {mode: [900.0 - 10 * i, 880.0 - 10 * i] for i, mode in enumerate(modes)}
    data = saturation.summarize(10, rates, {mode: [4e-4, 5e-4] for mode in modes})
    saturation.show(data, report.console())
    return data


def _stream() -> dict:
    rows = [
        {"tasks": n, "status": "complete", "succeeded": n, "peak_rss_bytes": peak, "peak_rss_during_run_bytes": 60 << 20,
         "run_json_bytes": 40_000, "checkpoint_p50_s": 0.004, "checkpoint_p99_s": 0.015, "checkpoints": 12,
         "achieved_per_s": 700.0, "wall_s": 9.0, "bare_achieved_per_s": 750.0, "bare_per_s": 720.0}
        for n, peak in ((20, 62 << 20), (40, 63 << 20))
    ]  # fmt: skip
    data = stream.summarize(rows)
    stream.show(data, report.console())
    return data


CASES = {
    "detection": _detection,
    "fidelity": _fidelity,
    "overhead": lambda: overhead.saved(
        {"bare": [900.0, 910.0], "oomlab": [890.0], overhead.PROFILED: [500.0], "memray": [600.0]}, 2e-5
    ),
    "sampler": lambda: {"figures": [{"processes": 2, "core_percent": 1.5, "ticks": 100, "cpu_seconds": 0.01}]},
    "plan": lambda: {"figures": [{"limit": "256MiB", "recommended": 2, "boundary": None, "seconds": 1.0}]},
    "load": _load,
    "saturation": _saturation,
    "stream": _stream,
    "tasks": lambda: {"rows": 10, "reads": {"Parquet": {"seconds": 0.1, "rounds_s": [0.1]}}, "read_speedup": 2.0},
    "agent": _agent,
    "plugin": lambda: {"rounds": 1, "all_with_plugin": [(0.5, 0.4)], "wall_difference_seconds": Spread(1, 1, 1, 1).p50},
}


def test_every_benchmark_has_a_save_case():
    assert set(CASES) == set(bench_main.BENCHMARKS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_benchmark_result_saves_and_reads_back(name, tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS", str(tmp_path))
    data = CASES[name]()
    path = report.save(name, data)
    with open(path) as handle:
        assert json.load(handle) == {"benchmark": name, **to_json(data)}


def test_the_profile_figure_is_its_slowdown_over_memrays():
    data = overhead.saved({"bare": [900.0], "oomlab": [890.0], overhead.PROFILED: [450.0], "memray": [600.0]}, 2e-5)
    assert data["profile_slowdown"] == pytest.approx(2.0) and data["memray_slowdown"] == pytest.approx(1.5)
    assert data["profile_to_memray_ratio"] == pytest.approx(2.0 / 1.5)


def test_the_agent_saves_the_containers_detection_beside_the_hosts(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS", str(tmp_path))
    data = _agent()
    assert data["detection"] == Spread(0.0035, 0.004, 0.004, 2)
    assert data["container"]["detection"] == Spread(0.025, 0.03, 0.03, 2) and data["container"]["kills"] == 2
    with open(report.save("agent", data)) as handle:
        saved = json.load(handle)["container"]
    assert saved["detection"] == {"p50": 0.025, "p95": 0.03, "max": 0.03, "n": 2}
    assert saved["victim_gone"] == {"p50": 0.02, "p95": 0.025, "max": 0.025, "n": 2}
    assert saved["agent_after_exit"]["n"] == 2 and saved["agent_after_exit_s"] == [0.005, 0.005]
    assert saved["clock_check"]["same_time_namespace"] is True


def test_the_agent_says_why_the_container_part_did_not_run():
    data = _agent({"unavailable": "no Docker engine is reachable"})
    assert data["container"] == {"unavailable": "no Docker engine is reachable"}
    out = Console(file=io.StringIO(), width=200)
    agent_cost.show(data, out)
    printed = out.file.getvalue()
    assert "not run" in printed and "no Docker engine is reachable" in printed
    assert "in a container, the agent its entrypoint (-) — n/a" in printed


def test_the_saturation_headline_is_the_closed_loops_gap():
    data = _saturation()
    assert data["oomlab_behind_percent"] == data["gap_percent"][saturation.CLOSED]
    assert data["oomlab_behind_percent"] == pytest.approx(100 * 20 / 890)
    assert data["batch_behind_percent"] < data["oomlab_behind_percent"] < data["rate_behind_percent"]


def test_the_detection_summary_keeps_its_spreads_and_stages():
    data = _detection()
    assert data["figures"][detection.CHILD] == Spread(0.001, 0.001, 0.001, 1)
    assert data["figures"][detection.WORKER].n == 1 and data["stages"]["child"]["woke"].n == 1
    assert data["ratio_p95"] == pytest.approx(300)


def test_the_stream_benchmark_sets_oomlabs_time_against_bare_celerys():
    data = _stream()
    assert [round(row["time_ratio"], 3) for row in data["rows"]] == [round(750 / 700, 3)] * 2
    assert round(data["peak_ratio"], 3) == round(63 / 62, 3) and data["largest_peak_bytes"] == 63 << 20
