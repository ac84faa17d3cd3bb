"""The pure parts of the task-tree truth: kernel lines naming a leaf, memory.stat by kind, a
descendant's kill pinned on its task, outcomes, and a shared process's peak window."""

from __future__ import annotations

from oomlab.assemble.attribution import KillContext, attribute_kills
from oomlab.assemble.outcomes import classify, shared_note
from oomlab.assemble.truth import mark_process_peaks
from oomlab.observe.detectors.kmsg import KernelKill, KmsgParser
from oomlab.observe.executions import build_executions
from oomlab.observe.monitor import Observations, owner_of_leaf
from oomlab.probe.task_tree import memory_kinds, process_kinds
from oomlab.record.schema import Execution, ProcessRecord

PROBE = [
    {"ev": "child_init", "pid": 11, "t": 9.0, "wall": 999.0, "ppid": 10},
    {"ev": "prerun", "task_id": "t1", "name": "convert", "pid": 11, "t": 10.0, "wall": 1000.0, "start_rss": 50},
    {"ev": "postrun", "task_id": "t1", "pid": 11, "t": 12.0, "wall": 1002.0, "peak_rss": 60, "state": "FAILURE"},
]


def test_a_kill_in_a_leaf_is_the_runs_and_names_the_leaf():
    parser = KmsgParser("/oomlab/run-1")
    leaf = "/oomlab/run-1/leaf-11"
    assert (
        parser.feed(
            f"6,1,1000000,-;oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg={leaf},task=convert,pid=77,uid=0", 1.0
        )
        is None
    )
    kill = parser.feed(
        "3,2,1000100,-;Memory cgroup out of memory: Killed process 77 (convert) total-vm:1kB, "
        "anon-rss:2048kB, file-rss:1024kB, shmem-rss:4096kB, UID:0",
        1.1,
    )
    assert kill is not None and kill.memcg == leaf
    assert kill.kinds == {"anon": 2 << 20, "file": 1 << 20, "shmem": 4 << 20}
    assert owner_of_leaf(leaf) == 11 and owner_of_leaf("/oomlab/run-1/leaf-main") is None
    other = "/oomlab/run-10/leaf-11"  # another run's leaf whose name starts the same
    parser.feed(f"6,3,1000200,-;oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg={other},task=x,pid=78,uid=0", 1.2)
    assert parser.feed("3,4,1000300,-;Killed process 78 (x) anon-rss:1kB, file-rss:0kB, shmem-rss:0kB", 1.3) is None


def test_memory_stat_by_kind_on_each_version():
    v1 = "cache 10\nrss 5\nshmem 3\ntotal_cache 300\ntotal_rss 100\ntotal_shmem 120\n"
    assert memory_kinds(v1, 1) == {"anon": 100, "file": 180, "shmem": 120}
    v2 = "anon 100\nfile 300\nshmem 120\nfile_mapped 7\n"
    assert memory_kinds(v2, 2) == {"anon": 100, "file": 180, "shmem": 120}
    assert memory_kinds(None, 2) is None
    status = b"VmRSS:\t 100 kB\nRssAnon:\t 60 kB\nRssFile:\t 30 kB\nRssShmem:\t 10 kB\n"
    assert process_kinds(status) == {"anon": 60 << 10, "file": 30 << 10, "shmem": 10 << 10}


def test_a_descendants_kill_is_pinned_on_the_task_that_started_it():
    obs = Observations(
        kernel_kills=[
            KernelKill(77, "convert", 11.0, 300, "Killed process 77", 11.002, False, 11.0, "/oomlab/r/leaf-11")
        ],
        oom_events=[(11.001, 1)],
    )
    ctx = KillContext(frozenset({10}), 5.0, build_executions(PROBE), {"t1": "convert"}, {}, [], {}, frozenset({11}))
    (kill,) = attribute_kills(obs, ctx)
    assert (kill.role, kill.task_id, kill.owner_pid, kill.command) == ("descendant", "t1", 11, "convert")


def test_a_descendant_seen_in_a_leaf_without_a_kernel_line():
    obs = Observations(oom_events=[(11.0, 1)], exits={77: 11.01}, leaf_of_pid={77: 11})
    ctx = KillContext(frozenset({10}), 5.0, build_executions(PROBE), {"t1": "convert"}, {}, [], {}, frozenset({11}))
    (kill,) = attribute_kills(obs, ctx)
    assert (kill.role, kill.task_id) == ("descendant", "t1")


def test_a_task_that_returned_after_its_subprocess_was_killed_says_so():
    assert classify("SUCCESS", None, [], False, descendant_killed=True) == "descendant_killed"
    assert classify("FAILURE", "RuntimeError: exited -9", [], False, descendant_killed=True) == "descendant_killed"
    assert classify("FAILURE", "WorkerLostError: x", [], True, descendant_killed=True) == "killed"
    assert classify("SUCCESS", None, [], False) == "succeeded"


def test_a_shared_process_names_the_tasks_in_flight_at_its_peak():
    probe = [
        {
            "ev": "prerun",
            "task_id": "a",
            "pid": 10,
            "t": 1.0,
            "wall": 1.0,
            "hwm_before": 50,
            "peak_reset": True,
            "shared_process": True,
        },
        {
            "ev": "prerun",
            "task_id": "b",
            "pid": 10,
            "t": 1.5,
            "wall": 1.5,
            "hwm_before": 90,
            "peak_reset": False,
            "shared_process": True,
        },
        {"ev": "postrun", "task_id": "a", "pid": 10, "t": 2.0, "wall": 2.0, "peak_rss": 150},
        {
            "ev": "prerun",
            "task_id": "c",
            "pid": 10,
            "t": 3.0,
            "wall": 3.0,
            "hwm_before": 100,
            "peak_reset": False,
            "shared_process": True,
        },
        {"ev": "postrun", "task_id": "b", "pid": 10, "t": 3.5, "wall": 3.5, "peak_rss": 140},
        {"ev": "postrun", "task_id": "c", "pid": 10, "t": 4.0, "wall": 4.0, "peak_rss": 120},
    ]
    executions = build_executions(probe)
    assert executions["a"][0].in_flight == ["b"] and sorted(executions["b"][0].in_flight) == ["a", "c"]
    main = ProcessRecord(pid=10, role="main", first_seen_mono=0.0, last_seen_mono=5.0)
    mark_process_peaks([main], probe, executions, {})
    assert main.peak_rss_bytes == 150 and main.peak_window_mono == (1.0, 2.0)
    assert main.tasks_at_peak == ["a", "b"]
    note = shared_note(executions["b"][0], "threads")
    assert "threads pool" in note and "not reset" in note


def test_solo_is_never_called_exact():
    run = Execution(pid=10, started_mono=1.0, started_wall=1.0, start_rss_bytes=50, shared_process=True)
    assert "consumer" in shared_note(run, "solo")
