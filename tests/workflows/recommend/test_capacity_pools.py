"""Capacity for a traffic target, the parts that pick a pool and judge the proof: the CPU a worker's
threads used (read from this process for real), the projection of a CPU-starved run to a replica
with its own cores, the sentence saying why a pool won, and the proof's verdicts."""

import os
import time
from dataclasses import replace
from types import SimpleNamespace

import pytest
from oomlab.config.options import RunConfig
from oomlab.record.load import Quantiles, RecyclingFigures, SoakFindings, ThroughputDip
from oomlab.workflows.recommend.capacity import plan_capacity
from oomlab.workflows.recommend.cpu_use import CpuUse, CpuWatch, machine_busy_ns, thread_times
from oomlab.workflows.recommend.fleet import Candidate, cheapest, fleet_row, fleet_table
from oomlab.workflows.recommend.load_proof import LoadProof, recycle_seconds, verdicts, with_recycling
from oomlab.workflows.recommend.throughput import LoadResult, cores_usable, project, sustainable
from oomlab.workflows.recommend.why import pool_reasons

from tests.workflows.recommend.test_capacity import profile

MIB = 1024 * 1024


def result(achieved: float, offered: float, cpu: CpuUse | None, tasks: int, run_time: float, **more) -> LoadResult:
    return LoadResult(
        "run", "complete", offered, 3.0, achieved, 0.5, 0, 0, 100 * MIB, offered, tasks, run_time, cpu, **more
    )


def use(window: float, worker_cpu: float, worker_wait: float, busy: float, cores: int = 2) -> CpuUse:
    return CpuUse(window, worker_cpu, worker_wait, busy, cores)


def test_the_watch_reads_this_processs_threads_and_the_machine():
    spin_until = time.thread_time() + 0.05
    while time.thread_time() < spin_until:
        pass
    mine = thread_times(os.getpid())
    assert os.getpid() in mine and mine[os.getpid()][0] >= 50_000_000  # ns on a core: at least the spin

    def watched(main_pid: int) -> CpuWatch:
        watch = CpuWatch()
        group = SimpleNamespace(pids=lambda: [os.getpid()])
        run = SimpleNamespace(group=group, record=SimpleNamespace(worker=SimpleNamespace(pid=main_pid)))
        watch.running(run)
        spin_until = time.thread_time() + 0.05
        while time.thread_time() < spin_until:
            pass
        watch.running(run)
        return watch

    as_main = watched(os.getpid())
    found = as_main.result()
    assert found is not None and found.worker_cpu_s >= 0.05 and found.window_s >= 0.05
    assert found.children_cpu_s == 0 and as_main.off_cpu_per_task(1, 1.0) is None  # no pool child to read
    assert found.machine_busy_s >= 0 and machine_busy_ns() > 0
    assert found.cores == len(os.sched_getaffinity(0))
    as_child = watched(1)  # this process taken for a pool child: its 50 ms are a task's CPU
    child = as_child.result()
    assert child is not None and child.children_cpu_s == child.worker_cpu_s >= 0.05
    off = as_child.off_cpu_per_task(1, 1.0)
    assert off is not None and off == pytest.approx(1.0 - child.children_cpu_s - child.children_wait_s)


def test_python_spreads_over_cores_only_in_prefork():
    assert cores_usable("prefork", 4, 2) == 2 and cores_usable("prefork", 1, 8) == 1
    assert cores_usable("threads", 16, 8) == cores_usable("gevent", 16, 8) == cores_usable("solo", 1, 8) == 1


def test_a_projection_is_the_slots_or_the_cores_whichever_is_less():
    # 72 tasks of 55 ms CPU each; each ran 0.56 s of which 0.5 s was spent waiting for a core
    cpu = use(window=10.0, worker_cpu=72 * 0.055, worker_wait=72 * 0.5, busy=20.0)
    prefork = project(result(7.2, 24.0, cpu, 72, 0.56), "prefork", 4)
    assert prefork is not None
    assert prefork.cpu_per_task_s == pytest.approx(0.055) and prefork.slot_time_s == pytest.approx(0.06)
    assert prefork.cpu_per_s == pytest.approx(2 / 0.055) and prefork.per_s == pytest.approx(2 / 0.055)
    assert prefork.cpu_bound
    threads = project(result(9.6, 24.0, cpu, 72, 0.56), "threads", 4)
    assert threads is not None and threads.per_s == pytest.approx(1 / 0.055) and threads.cpu_bound
    # an I/O-bound slot: 0.2 s of waiting, 8 ms of CPU: its slots are the limit, not its one core
    io = project(result(24.0, 24.0, use(3.0, 72 * 0.008, 0.0, 2.0), 72, 0.208), "threads", 16)
    assert io is not None and io.per_s == pytest.approx(16 / 0.208) and not io.cpu_bound
    assert project(result(5.0, 5.0, None, 10, 0.2), "prefork", 1) is None  # no CPU reading: no projection


def test_the_time_off_the_cpu_measured_alone_keeps_the_gils_turns_out_of_a_slots_time():
    # four threads computing 106 ms each, slowed by others: each task took 0.64 s, 0.1 s of it waiting
    # for a core itself and the rest for the other threads' turns
    starved = use(window=10.0, worker_cpu=24 * 0.106, worker_wait=24 * 0.1, busy=19.0)
    run = result(3.0, 12.0, starved, 24, 0.64)
    turns_in = project(run, "threads", 4)
    assert turns_in is not None and turns_in.slot_time_s == pytest.approx(0.54) and not turns_in.cpu_bound
    alone = project(run, "threads", 4, off_cpu_s=0.002)  # the one-child run: 2 ms a task off the CPU
    assert alone is not None and alone.slot_time_s == pytest.approx(0.108)
    assert alone.cpu_bound and alone.per_s == pytest.approx(1 / 0.106)


def test_only_a_saturated_run_others_starved_is_projected_and_never_above_what_was_sent():
    starved = use(window=10.0, worker_cpu=3.96, worker_wait=39.0, busy=20.0)  # others held 1.6 cores
    run = result(7.2, 24.0, starved, 72, 0.56)
    projection = project(run, "prefork", 4)
    assert sustainable(run, projection) == 24.0  # 36/s projected, 24/s offered
    quiet = use(window=10.0, worker_cpu=18.0, worker_wait=10.0, busy=19.0)  # others: 0.1 core
    assert sustainable(result(20.0, 24.0, quiet, 200, 0.2), projection) == 20.0
    kept_up = result(23.9, 24.0, starved, 72, 0.56)
    assert sustainable(kept_up, projection) == 23.9  # not saturated: the measurement stands
    slow = project(result(9.6, 24.0, starved, 72, 0.56), "threads", 4)
    assert sustainable(result(19.0, 24.0, starved, 72, 0.56), slow) == 19.0  # never below what was achieved


def test_the_queue_model_uses_what_the_slots_can_finish_and_ties_go_to_more_throughput():
    unsaturated = Candidate(256 * MIB, "threads", 16, 24.0, service_per_s=76.0)
    model = fleet_row(unsaturated, 20.0, 0.2, None).expected_queue_wait_p95_s
    as_if_full = fleet_row(replace(unsaturated, service_per_s=None), 20.0, 0.2, None).expected_queue_wait_p95_s
    assert model is not None and as_if_full is not None and model < 0.01 < as_if_full
    rows = fleet_table(
        [Candidate(256 * MIB, "gevent", 16, 24.1), Candidate(256 * MIB, "threads", 16, 24.3)], 20.0, 0.2, None
    )
    choice = cheapest(rows)
    assert choice is not None and choice.candidate.pool == "threads"


def _row(pool: str, concurrency: int, per: float, **fields) -> Candidate:
    return Candidate(256 * MIB, pool, concurrency, per, safe_concurrency=concurrency, **fields)


def test_why_names_the_copied_shared_pages_when_prefork_fits_fewer_slots():
    # a child: 15 MiB after the fork, 65 MiB at worst with 1 MiB tasks: 49 MiB copied from the main process
    worker = profile(child_idle_uss_bytes=15 * MIB, child_max_uss_bytes=65 * MIB, marginal_peaks=[MIB])
    rows = fleet_table(
        [
            _row("prefork", 1, 4.6, slot_bytes=65 * MIB, cpu_per_task_s=0.01, cores_usable=1),
            _row("threads", 16, 24.3, slot_bytes=MIB, cpu_per_task_s=0.01, cores_usable=1),
            _row("solo", 1, 4.5, slot_bytes=MIB),
        ],
        20.0,
        0.2,
        None,
    )
    choice = cheapest(rows)
    assert choice is not None and choice.candidate.pool == "threads"
    prefork, solo = pool_reasons(rows, choice, {256 * MIB: worker})
    assert prefork.startswith("threads over prefork: prefork needs 6 x 256.0 MiB")
    assert "fits 1 slot(s)" in prefork and "49.0 MiB more than its largest task" in prefork
    assert "copied as its tasks wrote to them" in prefork
    assert "solo runs one task at a time" in solo


def test_why_compares_slots_at_the_chosen_limit_when_the_other_pool_is_cheapest_at_another():
    rows = fleet_table(
        [
            Candidate(256 * MIB, "threads", 3, 15.1, safe_concurrency=3, slot_bytes=48 * MIB),
            Candidate(256 * MIB, "prefork", 2, 10.2, safe_concurrency=2, slot_bytes=64 * MIB),
            Candidate(384 * MIB, "prefork", 4, 20.2, safe_concurrency=4, slot_bytes=64 * MIB),
        ],
        20.0,
        0.2,
        None,
    )
    choice = cheapest(rows)
    assert choice is not None and choice.candidate.pool == "threads"
    (prefork,) = pool_reasons(rows, choice, {256 * MIB: profile(marginal_peaks=[48 * MIB])})
    assert "prefork needs 2 x 384.0 MiB = 768.0 MiB at its cheapest against 2 x 256.0 MiB = 512.0 MiB" in prefork
    assert "prefork fits 2 slot(s) in 256.0 MiB at 64.0 MiB each" in prefork and "threads fits 3" in prefork


def test_why_names_the_gil_when_one_process_is_cpu_bound():
    rows = fleet_table(
        [
            _row("prefork", 4, 24.0, cpu_per_task_s=0.055, cores_usable=2, cpu_bound=True),
            _row("threads", 4, 17.6, cpu_per_task_s=0.055, cores_usable=1, cpu_bound=True),
        ],
        20.0,
        0.2,
        None,
    )
    choice = cheapest(rows)
    assert choice is not None and choice.candidate.pool == "prefork"
    (threads,) = pool_reasons(rows, choice, {})
    assert "threads is CPU-bound: its tasks take 55 ms of CPU each on 1 core" in threads
    assert "the GIL" in threads and "prefork x4 uses 2 core(s)" in threads
    # measured with its core to itself: its figure is the table's, the CPU ceiling named as not reached
    assert "carried 17.6/s with its core(s) to itself (measured, not projected" in threads
    assert "the 18.2/s its CPU per task alone allows" in threads and "at most" not in threads
    # projected (others held the cores): the same rule as the table, up to the ceiling
    starved = _row("threads", 4, 17.0, cpu_per_task_s=0.055, cores_usable=1, cpu_bound=True, contention="others")
    rows = fleet_table([rows[0].candidate, starved], 20.0, 0.2, None)
    (projected,) = pool_reasons(rows, cheapest(rows), {})
    assert "at most 18.2/s, and carried 17.0/s" in projected


def test_recycling_follows_the_concurrency_run_at_and_the_proof_lasts_until_every_child_recycled():
    leaking = profile(leak_bytes_per_task=4 * MIB, marginal_peaks=[4 * MIB], child_max_uss_bytes=100 * MIB)
    safe = plan_capacity(leaking, 256 * MIB, 0.1)
    capped = plan_capacity(leaking, 256 * MIB, 0.1, run_at=2)
    assert capped.concurrency == safe.concurrency  # run_at changes no verdict on what fits
    assert capped.max_tasks_per_child is not None and safe.max_tasks_per_child is not None
    assert capped.max_tasks_per_child > safe.max_tasks_per_child  # two children share more room
    config = with_recycling(RunConfig("leak", "256MiB", 256 * MIB, 2), leaking, 0.1)
    assert config.celery_conf["worker_max_tasks_per_child"] == capped.max_tasks_per_child
    assert recycle_seconds(config, 8.0) == capped.max_tasks_per_child * 2 / 8.0
    assert recycle_seconds(replace(config, pool="threads"), 8.0) is None


def proof(step_up: LoadResult | None, killed: bool | None, **setting) -> LoadProof:
    room = None if killed or step_up is None else 256 * MIB - (step_up.group_peak_bytes or 0)
    return LoadProof(
        result(8.06, 8.0, None, 56, 0.1, **setting),
        step_up,
        step_up_concurrency=3,
        per_replica_per_s=8.0,
        seconds=7.0,
        held=True,
        kept_up=True,
        step_up_killed=killed,
        step_up_room_bytes=room,
    )


def test_verdicts_say_the_step_up_was_killed_or_by_how_much_it_held():
    config = RunConfig("s", "256MiB", 256 * MIB, 2, celery_conf={"worker_max_tasks_per_child": 18})
    recycled = RecyclingFigures(
        children_recycled=2,
        replacement_seconds=Quantiles(p50=0.463),
        throughput_dip=ThroughputDip(6.5, 8.6, None, 3),
    )
    soak = SoakFindings(growth_per_1000_tasks_per_child_bytes=4096 * MIB, significant=True, children_measured=4)
    killed_up = replace(result(3.0, 8.0, None, 10, 0.1), kills=1, status="complete")
    held, recycling, slope, step = verdicts(
        proof(killed_up, True, recycling=recycled, soak=soak), config, 256 * MIB, 0.1, 4.5, None
    )
    assert held.startswith("the setting held: 0 OOM kill(s), 56 tasks finished")
    assert "worker_max_tasks_per_child=18" in recycling and "2 children replaced" in recycling
    assert "463 ms" in recycling and "6.5/s in seconds with a replacement against 8.6/s" in recycling
    assert slope == "leak slope: each pool child grew 4.0 GiB per 1,000 tasks (a steady line; 4 measured)"
    assert "1 OOM kill(s)" in step and "measured boundary" in step
    # the step up held inside the margin: conservative by the margin only
    into_margin = replace(result(8.0, 8.0, None, 40, 0.1), group_peak_bytes=245 * MIB)
    *_, step = verdicts(proof(into_margin, False), config, 256 * MIB, 0.1, None, None)
    assert "HELD" in step and "11.0 MiB below the limit" in step and "conservative by the margin only" in step
    # ... or below the margin: conservative by at least one slot
    roomy = replace(into_margin, group_peak_bytes=150 * MIB)
    *_, step = verdicts(proof(roomy, False), config, 256 * MIB, 0.1, None, None)
    assert "by at least one slot" in step and "below the limit less the margin" in step
    none_seen = verdicts(proof(None, None), config, 256 * MIB, 0.1, 4.5, None)
    assert "no child replaced in 7 s; every child is due for replacement after 4.5 s" in none_seen[1]
    assert none_seen[2].startswith("leak slope: not enough data")
    assert none_seen[3].startswith("no step up")
