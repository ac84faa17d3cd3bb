from oomlab.assemble.attribution import KillContext, attribute_kills
from oomlab.observe.detectors.kmsg import KernelKill
from oomlab.observe.executions import build_executions
from oomlab.observe.monitor import Observations
from oomlab.record.schema import CeleryEvent

PROBE = [
    {"ev": "prerun", "task_id": "t1", "name": "alloc.allocate", "pid": 11, "t": 10.0, "wall": 1000.0, "start_rss": 50},
    {"ev": "prerun", "task_id": "t2", "name": "alloc.allocate", "pid": 12, "t": 10.1, "wall": 1000.1, "start_rss": 50},
    {"ev": "postrun", "task_id": "t2", "pid": 12, "t": 10.5, "wall": 1000.5, "peak_rss": 90, "state": "SUCCESS"},
]


def context(events=()):
    executions = build_executions(PROBE)
    return KillContext(
        main_pids=frozenset({10}),
        ready_mono=5.0,
        executions=executions,
        names={"t1": "alloc.allocate", "t2": "alloc.allocate"},
        pid_stats={},
        celery_events=list(events),
    )


def test_kmsg_kill_gets_its_task_and_every_detectors_latency():
    obs = Observations(
        kernel_kills=[KernelKill(11, "python", 11.000, 300, "Killed process 11", 11.002, False)],
        oom_events=[(11.001, 1)],
        exits={11: 11.010},
    )
    failed = CeleryEvent(
        "task-failed",
        11.2,
        1001.05,
        11.05,
        "w",
        "t1",
        {"exception": "ExceptionWithTraceback()", "traceback": "billiard.exceptions.WorkerLostError: x"},
    )
    [kill] = attribute_kills(obs, context([failed]))
    assert (kill.pid, kill.role, kill.task_id, kill.signal, kill.cause) == (11, "child", "t1", "SIGKILL", "oom")
    assert round(kill.detected["kmsg"], 3) == 0.002
    assert round(kill.detected["oom_event"], 3) == 0.001
    assert round(kill.detected["pidfd"], 3) == 0.010
    assert round(kill.detected["celery_worker_lost"], 3) == 0.050
    assert kill.detected["oomlab"] == kill.detected["kmsg"]


def test_without_kmsg_the_victim_is_inferred_from_the_counter_and_the_exit():
    obs = Observations(oom_events=[(11.0, 1)], exits={12: 12.9, 11: 11.01})
    [kill] = attribute_kills(obs, context())
    assert kill.pid == 11 and kill.kernel_time_source == "oom_event" and kill.task_id == "t1"


def test_an_inferred_kill_is_no_later_than_the_victims_exit():
    # the exit was seen a moment before the counter was read: the kill cannot have come after it
    obs = Observations(oom_events=[(11.003, 1)], exits={11: 11.001})
    [kill] = attribute_kills(obs, context())
    assert kill.kernel_time_mono == 11.001 and kill.detected["pidfd"] == 0 and kill.detected["oom_event"] == 0.002


def test_the_group_walk_naming_the_victim_again_is_one_kill():
    obs = Observations(
        kernel_kills=[
            KernelKill(11, "python", 11.0, 300, "m", 11.001, False),
            KernelKill(10, "python", 11.0001, 50, "m", 11.001, True),
            KernelKill(11, "python", 11.0002, 300, "m", 11.001, True),
        ],
        exits={10: 11.02, 11: 11.01},
    )
    kills = attribute_kills(obs, context())
    assert [(k.pid, k.cause) for k in kills] == [(11, "oom"), (10, "oom_group")]


def test_an_inferred_victim_is_the_killed_exit_nearest_the_counter():
    # a poison loop without the kernel log: a recycled child exits cleanly first, another process a
    # moment before the counter rises, and the victim (slow to release its memory) a little after it
    probe = [*PROBE, {"ev": "child_shutdown", "pid": 13, "t": 11.2, "exitcode": 0}]
    obs = Observations(oom_events=[(11.0, 1)], exits={13: 11.2, 14: 10.96, 11: 11.03, 15: 11.6}, probe=probe)
    [kill] = attribute_kills(obs, context())
    assert kill.pid == 11 and kill.task_id == "t1"


def test_emulated_group_kill_records_every_process():
    obs = Observations(
        kernel_kills=[KernelKill(11, "python", 11.0, 300, "m", 11.001, False)],
        oom_events=[(11.001, 1)],
        exits={10: 11.02, 11: 11.01, 12: 11.02},
        group_kills=[(11.001, [10, 11, 12])],
    )
    kills = attribute_kills(obs, context())
    assert {(k.pid, k.role, k.cause) for k in kills} == {
        (11, "child", "oom"),
        (10, "main", "oom_group"),
        (12, "child", "oom_group"),
    }


def test_oomlab_knows_a_kill_when_the_monitor_named_its_pid_and_task_and_keeps_the_rounds_trace():
    obs = Observations(
        kernel_kills=[KernelKill(11, "python", 11.000, 300, "Killed process 11", 11.0004, False)],
        exits={11: 11.010},
        named={11: (11.0006, "t1")},
        stages={11: {"woke": 11.0003, "kmsg_read": 11.0004, "named": 11.0006, "round_done": 11.0009}},
    )
    [kill] = attribute_kills(obs, context())
    assert kill.detected["oomlab"] == 0.0006  # pid and task, not only the kernel's line
    assert kill.stages == {"woke": 0.0003, "kmsg_read": 0.0004, "named": 0.0006, "round_done": 0.0009}


def test_a_naming_without_the_task_attribution_finds_falls_back_to_the_detectors():
    obs = Observations(
        kernel_kills=[KernelKill(11, "python", 11.000, 300, "Killed process 11", 11.0004, False)],
        named={11: (11.0006, None)},  # the monitor had not read the task's start yet
        stages={11: {"named": 11.0006}},
    )
    [kill] = attribute_kills(obs, context())
    assert kill.detected["oomlab"] == kill.detected["kmsg"] and kill.stages == {}


def test_oomlabs_own_group_kill_is_timed_from_its_signal_to_each_process():
    obs = Observations(
        group_kills=[(11.003, [10, 12])],
        oomlab_kills={10: 11.001, 12: 11.002},
        named={10: (11.0011, None), 12: (11.0021, None)},
        exits={10: 11.05, 12: 11.04},
    )
    kills = {k.pid: k for k in attribute_kills(obs, context())}
    assert kills[10].kernel_time_mono == 11.001 and kills[10].kernel_time_source == "oomlab_group_kill"
    assert kills[10].detected["oomlab"] == 0.0001 and kills[10].detected["pidfd"] == 0.049
