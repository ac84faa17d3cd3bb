"""The benchmarks' own building blocks, so `python -m bench` does not rot between the runs that
quote it (the full benchmark is not part of the tests: it takes minutes and wants a quiet machine)."""

from __future__ import annotations

import importlib
import tempfile
import threading
import time

import pytest

pytestmark = pytest.mark.integration

MIB = 1 << 20


def test_a_reduced_fidelity_matrix_tells_tools_apart(tmp_path):
    """Two kinds, one other tool, a real worker: oomlab on target on both, tracemalloc blind to a
    program's memory (it sees only this process's allocators)."""
    from bench.fidelity import OOMLAB, measure

    matrix = measure(str(tmp_path), mib=16, kinds=["C extension (numpy)", "subprocess (dd)"], tools=["tracemalloc"])
    for kind, cells in matrix.items():
        assert cells[OOMLAB].on_target, (kind, cells[OOMLAB])
        assert cells[OOMLAB].kernel > 15 * MIB, (kind, cells[OOMLAB])
    assert matrix["C extension (numpy)"]["tracemalloc"].on_target
    assert (matrix["subprocess (dd)"]["tracemalloc"].reported or 0) < MIB  # the dd it ran is not Python's


def test_the_spike_is_short_and_a_cell_judges_on_percent_or_mebibytes():
    from bench.fidelity import Cell, show
    from bench.memory_kinds import spike_lifetime

    assert min(spike_lifetime(32) for _ in range(5)) < 0.05  # pre-faulted in one call: not 150 ms of writes
    assert Cell(33 * MIB, 32 * MIB).error_percent == 3.125 and not Cell(34 * MIB, 32 * MIB).on_target
    assert Cell(32 * MIB + MIB // 2, 32 * MIB).on_target  # under 1 MiB off
    assert Cell(0, 32 * MIB).error_percent == -100.0 and Cell(None, 32 * MIB).error_bytes is None
    assert show(Cell(32 * MIB, 100 << 10)) == "32.0 MiB (+31.9 MiB)"  # no percent of next to nothing
    assert show(Cell(None, MIB)) == "-"


def test_sampler_cost_is_measured_from_its_own_cpu_clock(monkeypatch):
    from bench import sampler_cost

    monkeypatch.setattr(sampler_cost, "SECONDS", 1.0)
    figures = sampler_cost.cost_for(2)
    assert figures["processes"] == 2
    assert figures["ticks_per_second"] > 50  # 100 Hz asked for, on a busy machine
    assert 0 < figures["core_percent"] < 100
    assert figures["cpu_us_per_rss_process_sample"] > 0


def test_the_tasks_read_benchmark_repeats_real_lines_and_pandas_reads_both_files(tmp_path, monkeypatch):
    from oomlab.config.options import RunConfig
    from oomlab.record.export import write_parquet
    from oomlab.record.schema import RunRecord, write_json_atomic
    from oomlab.record.stream import RunTasks, TaskStream

    from bench import tasks_read
    from tests.record.test_stream_reader import _line

    source = tmp_path / "source"
    source.mkdir()
    write_json_atomic(str(source / "run.json"), RunRecord("r", RunConfig("alloc", "256MiB", 2, 1)).to_json())
    stream = TaskStream(str(source))
    for index in range(3):
        stream.write(_line(index, 40 + index))
    stream.close()
    run_dir = tasks_read.repeated(str(source), str(tmp_path / "run"), 10)
    lines = list(RunTasks(run_dir))
    assert len(lines) == len({t.id for t in lines}) == 10
    assert lines[3].sent_mono > lines[0].sent_mono and lines[3].peak_rss_bytes == lines[0].peak_rss_bytes
    parquet = str(tmp_path / "t.parquet")
    write_parquet(RunTasks(run_dir), parquet)
    monkeypatch.setattr(tasks_read, "ROUNDS", 1)
    for kind, path in (("jsonl", f"{run_dir}/tasks.jsonl"), ("parquet", parquet)):
        figures = tasks_read.pandas_read(kind, path, 10)
        assert figures["seconds"] > 0 and figures["peak_rss_bytes"] > 0 and figures["file_bytes"] > 0


def test_the_overhead_benchmarks_profile_mode_marks_every_tasks_window():
    """`oomlab --profile` in `python -m bench overhead`: a round refuses to count a throughput for
    which not every task's window was marked in a capture."""
    from bench.overhead import PROFILED, timed_round

    assert timed_round(PROFILED, 20).per_s > 0


@pytest.mark.parametrize("module", ["bench.overhead", "bench.agent_cost"])
def test_a_benchmarks_bare_worker_keeps_billiards_directory_out_of_the_users_temp_directory(
    module, tmp_path, monkeypatch
):
    """A worker the benchmark starts itself gets a TMPDIR of its own (as `oomlab run`'s does): its
    pymp-* directory never sits in the user's, where a worker killed at the round's end would leave it."""
    one_round = importlib.import_module(module).one_round
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.update(path.name for path in tmp_path.glob("pymp-*"))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        one_round("bare", 20)
    finally:
        done.set()
        watcher.join()
    assert not seen, seen
    assert not list(tmp_path.iterdir()), list(tmp_path.rglob("*"))


def _kernel_kill(stamp: float):
    from oomlab.observe.detectors.kmsg import KernelKill

    return KernelKill(7, "python3", stamp, 256 << 20, "Killed process 7", stamp + 0.1, False, stamp)


def test_a_container_kill_is_timed_from_the_kernels_line_to_the_agents_seen_time():
    from oomlab.observe.detectors.kmsg import KernelClock

    from bench.agent_container import ClockNotShared, pair

    clock = KernelClock([(100.0, 0.001)])  # the kernel log's clock 1 ms ahead of CLOCK_MONOTONIC
    alert = {"role": "pool child", "cause": "oom", "seen_monotonic": 100.02, "host_received_monotonic": 100.05}
    seconds, why = pair([alert], [_kernel_kill(100.0)], clock)
    assert seconds == pytest.approx(0.021) and why == ""
    assert pair([alert], [_kernel_kill(100.0), _kernel_kill(100.01)], clock) == (
        None,
        "1 pool-child alerts and 2 kernel lines for one task",
    )
    # seen from the kill counter just before the kernel's line: the same clock, a little below zero
    assert pair([{**alert, "seen_monotonic": 99.9985}], [_kernel_kill(100.0)], clock)[0] == pytest.approx(-0.0005)
    with pytest.raises(ClockNotShared):  # seen long before the kernel killed it: not the host's clock
        pair([{**alert, "seen_monotonic": 99.0}], [_kernel_kill(100.0)], clock)


@pytest.mark.docker
def test_the_container_part_times_kills_the_host_reads_in_the_kernel_log():
    """Two kills in the agent's container (unprivileged, mem_limit, the agent its entrypoint), timed
    from the host's /dev/kmsg; the container's CLOCK_MONOTONIC checked to be the host's."""
    from bench.agent_container import EARLY_S, detection

    found = detection(2)
    assert found["kills"] == 2 and found["unpaired"] == [], found
    # a kill seen from the counter may read a little below zero: counted before the kernel's line
    assert all(-EARLY_S <= seconds < 2.0 for seconds in found["detection_s"]), found["detection_s"]
    assert len(found["victim_gone_s"]) == 2 and all(0 < seconds < 2.0 for seconds in found["victim_gone_s"])
    assert len(found["agent_after_exit_s"]) == 2
    check = found["clock_check"]
    assert check["same_time_namespace"] and check["host_before"] <= check["container"] <= check["host_after"]
    assert found["agent_rss_bytes"] > 0 and found["limit_bytes"] == 256 << 20
