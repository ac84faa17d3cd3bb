"""What a limit must hold for a task, from its leaf's readings: the rules, without a worker."""

from __future__ import annotations

import json
import os
import threading

from oomlab.assemble.needs import fill_needs, needs_of
from oomlab.config.scenario import TaskCall
from oomlab.observe.sampler import LeafSeries, Sampler
from oomlab.probe.task_tree import memory_kinds, unreclaimable
from oomlab.record.schema import Execution, KillRecord, TaskRecord
from oomlab.run.load.book import Book

MIB = 2**20


def test_kernel_memory_counts_as_unreclaimable_and_reclaimable_slab_does_not():
    v2 = "anon 10\nfile 100\nshmem 5\nkernel 40\nslab_reclaimable 15\n"
    kinds = memory_kinds(v2, 2)
    assert kinds == {"anon": 10, "file": 95, "shmem": 5, "kernel": 25}
    assert unreclaimable(kinds) == 40
    v1 = "total_rss 10\ntotal_cache 100\ntotal_shmem 5\n"
    assert memory_kinds(v1, 1, kmem=7) == {"anon": 10, "file": 95, "shmem": 5, "kernel": 7}


def test_the_highest_sample_in_a_tasks_span_includes_the_value_held_when_it_began():
    series = LeafSeries()
    for t, held, cache in ((0.0, 1, 0), (1.0, 50, 10), (2.0, 5, 200), (3.0, 90, 0)):
        series.add(t, held * MIB, cache * MIB)
    assert series.highest(1.5, 2.5) == (50 * MIB, 200 * MIB)
    assert series.highest(-1, 0.5) == (1 * MIB, 0)


def _run(**fields) -> Execution:
    base = dict(pid=7, started_mono=1.0, started_wall=0.0, start_rss_bytes=40 * MIB, finished_mono=3.0)
    return Execution(**{**base, **fields})


def test_a_file_writer_needs_its_anon_and_touched_its_cache():
    task = TaskRecord("t", "write", "", [], 0.0)
    start = {"anon": MIB, "file": 0, "shmem": 0, "kernel": 0}
    series = LeafSeries()
    series.add(0.5, MIB, 0)
    series.add(2.0, 5 * MIB, 240 * MIB)
    end = {"anon": 2 * MIB, "file": 100 * MIB, "shmem": 0, "kernel": 0}
    fill_needs(task, _run(tree_kinds_start=start, tree_kinds_end=end), None, {7: series})
    assert task.needs_above_start_bytes == 4 * MIB and task.page_cache_above_start_bytes == 240 * MIB
    assert not task.needs_is_exact and "sampled during the task" in (task.needs_note or "")


def test_a_killed_task_needs_at_least_what_the_kernel_found_in_anon_and_shmem():
    task = TaskRecord("t", "alloc", "", [], 0.0)
    start = {"anon": 40 * MIB, "file": 0, "shmem": 0}
    kill = KillRecord(7, "child", "t", "alloc", "SIGKILL", "oom", 2.0, "kmsg", kinds={"anon": 240 * MIB, "shmem": 0})
    fill_needs(task, _run(tree_kinds_start=start, finished_mono=None), kill, {})
    assert task.needs_above_start_bytes == 200 * MIB
    assert "killed process" in (task.needs_note or "")


def test_a_load_runs_task_whose_program_exited_needs_what_its_leaf_was_sampled_at(tmp_path):
    # the program allocated 100 MiB and exited before the task's end: its end reading is back at the
    # start, the sample during it is not; the line, the name's figures and the summary say the same
    start = {"anon": MIB, "file": 3 * MIB, "shmem": 0, "kernel": 0}
    end = {"anon": MIB, "file": 5 * MIB, "shmem": 0, "kernel": 0}
    assert needs_of(start, None, end, None) is not None and needs_of(start, None, end, None).above_start == 0
    assert needs_of(None, (100 * MIB, 0), end, None) is None  # no leaf at its start: no figure
    book = Book(str(tmp_path), 10.0, lambda _: None)
    book.open(TaskCall("run_program", ()), None)
    flight = next(iter(book.flights.values()))
    flight.start_kinds, flight.tree_start, flight.start_rss = start, 20 * MIB, 40 * MIB
    highest = (101 * MIB, 4 * MIB)
    book.final(flight, "succeeded", "SUCCESS", None, book.start + 1, 41 * MIB, end, (125 * MIB, True), highest)
    book.stream.close()
    (line,) = [json.loads(raw) for raw in open(os.path.join(tmp_path, "tasks.jsonl"))]
    assert line["needs_above_start_bytes"] == 100 * MIB and line["page_cache_above_start_bytes"] == 2 * MIB
    assert line["tree_peak_above_start_bytes"] == 105 * MIB and line["tree_peak_is_exact"]
    assert "sampled during the task, read at its end" in line["needs_note"]
    figures = book.by_name["run_program"].figures()
    assert figures.needs_above_start_bytes.max == 100 * MIB and figures.tree_peak_above_start_bytes.max == 105 * MIB
    assert book.needs.max == 100 * MIB and book.tree_above_start.n == 1


def test_the_sampler_lets_a_load_runs_leaf_points_go_once_its_task_ended():
    sampler = Sampler.__new__(Sampler)  # only its leaves and their lock: no group to read
    sampler._lock, sampler.leaves = threading.Lock(), {7: LeafSeries()}
    for t, held in ((0.0, 1), (1.0, 100), (2.0, 1), (3.0, 50)):
        sampler.leaves[7].add(t, held * MIB, 0)
    assert sampler.leaf_highest(7, 0.5, 2.5) == (100 * MIB, 0)
    assert sampler.leaves[7].t_mono == [2.0, 3.0]  # the point held at the end stays, the ones before go
    assert sampler.leaf_highest(7, 2.5, 3.5) == (50 * MIB, 0)
    assert sampler.leaf_highest(8, 0.0, 1.0) is None


def test_a_leaking_childs_kill_counts_its_rise_not_what_it_held_before_the_leaf():
    # A child that leaked 185 MiB into its leaf but whose RSS was 242 MiB when the task began (pages from
    # before the move stay charged above): killed at 250 MiB anon + 5.6 MiB file, it grew by 14 MiB.
    task = TaskRecord("t", "leak", "", [], 0.0)
    start = {"anon": 185 * MIB, "file": 0, "shmem": 0}
    kinds = {"anon": 250 * MIB, "file": 5 * MIB + 600 * 1024, "shmem": 0}
    kill = KillRecord(7, "child", "t", "leak", "SIGKILL", "oom", 2.0, "kmsg", kinds=kinds)
    fill_needs(task, _run(tree_kinds_start=start, start_rss_bytes=242 * MIB, finished_mono=None), kill, {})
    assert task.needs_above_start_bytes == 13 * MIB + 600 * 1024
