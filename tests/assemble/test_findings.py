"""harness/assemble/findings.py on records built by hand: which recycling setting replaced a child (exit 155)
when the record holds no task list, as a load run's does not; failures by exception type; and the
terminal's per-name table over the same tasks."""

from __future__ import annotations

import pytest
from oomlab.assemble.findings import bystanders, chains_cut, failures, findings, recycling
from oomlab.config.options import RunConfig
from oomlab.record.schema import Execution, KillRecord, ProcessRecord, RunRecord, TaskRecord


def _record(conf: dict) -> RunRecord:
    record = RunRecord(run_id="r", config=RunConfig("leak", "256MiB", 1, 1))
    record.worker.celery_conf = conf
    record.processes = [ProcessRecord(pid, "child", 0.0, 1.0, exit_code=155) for pid in (11, 12, 13)]
    return record


@pytest.mark.parametrize(
    "conf, phrase",
    [
        (
            {"worker_max_tasks_per_child": 11},
            "3 pool children were recycled (exit code 155) after worker_max_tasks_per_child=11 tasks",
        ),
        ({"worker_max_memory_per_child": 65536}, "above worker_max_memory_per_child (64.0 MiB)"),
        (
            {"worker_max_tasks_per_child": 11, "worker_max_memory_per_child": 65536},
            "by worker_max_tasks_per_child=11 or worker_max_memory_per_child (64.0 MiB); the record does not show",
        ),
        ({}, "for a reason the record does not show"),
    ],
)
def test_a_recycled_child_names_the_setting_the_run_set(conf, phrase):
    found = recycling(_record(conf))
    assert len(found) == 1 and phrase in found[0], found


def _task(task_id: str, name: str, outcome: str = "succeeded", exception: str | None = None, **figures) -> TaskRecord:
    return TaskRecord(task_id, name, "", [], 0.0, outcome=outcome, exception=exception, **figures)


def test_each_exception_type_among_failed_tasks_is_one_finding_with_its_first_message():
    record = RunRecord(run_id="r", config=RunConfig("workflows", "256MiB", 1, 1))
    record.tasks = [
        _task("1", "a.parse", "failed", "ValueError: bad row 7"),
        _task("2", "a.parse", "failed", "ValueError: bad row 9"),
        _task("3", "a.fetch", "failed", "RuntimeError"),  # no message
        _task("4", "a.fetch", "failed", "KeyError: " + "k" * 300),
        _task("5", "a.fetch", "succeeded", "ValueError: retried, then it worked"),  # not a failure
        _task("6", "a.fetch", "killed", "WorkerLostError: Worker exited prematurely"),  # a kill says so itself
    ]
    assert failures(record) == [
        "2 task(s) failed with ValueError, first in a.parse: bad row 7",
        "1 task(s) failed with RuntimeError, first in a.fetch",
        "1 task(s) failed with KeyError, first in a.fetch: " + "k" * 200,
    ]


def test_the_per_name_table_has_each_names_growth_tree_kills_and_failures():
    from oomlab.report.by_name import by_name_table, nearest_rank
    from rich.console import Console

    record = RunRecord(run_id="r", config=RunConfig("workflows", "256MiB", 1, 1))
    assert by_name_table(record) is None  # a load run: its own table per name
    mib = 1 << 20
    record.tasks = [
        *(
            _task(f"p{i}", "w.part", peak_above_start_bytes=i * mib, peak_is_exact=True,
                  tree_peak_above_start_bytes=(i + 1) * mib, sent_by="worker")
            for i in range(1, 21)
        ),
        _task("x", "w.part", "killed", peak_above_start_bytes=500 * mib),  # not exact: no growth figure
        _task("s", "w.start", "failed", "ValueError: no parts", peak_above_start_bytes=mib, peak_is_exact=True),
    ]  # fmt: skip
    record.kills = [KillRecord(1, "child", "x", "w.part", "SIGKILL", "oom", 0.0, "kmsg")]
    assert (nearest_rank(list(range(1, 21)), 0.5), nearest_rank(list(range(1, 21)), 0.95)) == (10, 19)
    table = by_name_table(record)
    assert table is not None
    console = Console(record=True, width=200)
    console.print(table)
    rows = [line.split("│")[1:-1] for line in console.export_text().splitlines() if line.startswith("│")]
    cells = [[cell.strip() for cell in row] for row in rows]
    assert cells == [
        ["w.part (20 sent by tasks)", "21", "10.0 MiB", "19.0 MiB", "20.0 MiB", "21.0 MiB", "1", "-"],
        ["w.start", "1", "1.0 MiB", "1.0 MiB", "1.0 MiB", "-", "0", "ValueError ×1"],
    ]


def _bystander_record(sibling_growth_mib: int) -> RunRecord:
    """pid 11 had kept 150 MiB from earlier tasks and ran a small one; pid 12's task grew meanwhile."""
    mib = 2**20
    record = RunRecord(run_id="r", config=RunConfig("alloc", "256MiB", 2, 2))
    small = _task("s", "shop.thumb", "killed")
    small.executions = [Execution(11, 10.0, 0.0, start_rss_bytes=180 * mib, killed=True)]
    grower = _task("g", "shop.resize")
    grower.executions = [
        Execution(
            12, 9.0, 0.0, start_rss_bytes=30 * mib, finished_mono=14.0, peak_rss_bytes=(30 + sibling_growth_mib) * mib
        )
    ]
    done = _task("d", "shop.resize")  # finished before the kill: not a suspect
    done.executions = [Execution(12, 1.0, 0.0, start_rss_bytes=30 * mib, finished_mono=2.0, peak_rss_bytes=500 * mib)]
    record.tasks = [small, grower, done]
    record.kills = [
        KillRecord(11, "child", "s", "shop.thumb", "SIGKILL", "oom", 12.0, "kmsg", rss_bytes=190 * mib),
    ]
    return record


def test_a_task_killed_while_another_grew_more_is_named_a_bystander():
    [found] = bystanders(_bystander_record(sibling_growth_mib=60))
    assert found.startswith("shop.thumb[s] was OOM-killed as a bystander: its process (pid 11) held 190.0 MiB")
    assert "180.0 MiB of it from before the task started" in found
    assert "shop.resize[g] in pid 12, running at the kill, grew 60.0 MiB above its start" in found
    assert found in findings(_bystander_record(sibling_growth_mib=60))
    assert "a queue and worker of its own for shop.resize, or fewer tasks at once" in found
    same = _bystander_record(sibling_growth_mib=60)
    same.tasks[1].name = "shop.thumb"  # one task that leaks: another queue for it would part nothing
    [said] = bystanders(same)
    assert "a queue and worker of its own" not in said and said.endswith(
        "replaced), fewer tasks at once (--concurrency)"
    )
    # the victim grew 10 MiB: a sibling that grew no more is no culprit, and nothing is said
    assert bystanders(_bystander_record(sibling_growth_mib=10)) == []


def test_a_redelivered_tasks_kill_is_told_from_the_delivery_it_hit():
    mib = 2**20
    record = RunRecord(run_id="r", config=RunConfig("leak", "256MiB", 2, 1))
    record.worker.celery_conf = {"worker_max_memory_per_child": 65536}
    task = _task("p", "shop.import")
    task.executions = [  # killed in pid 11 at t=14, 4 s in; delivered again to pid 12, which it survived
        Execution(11, 10.0, 0.0, start_rss_bytes=40 * mib, killed=True),
        Execution(12, 15.0, 0.0, start_rss_bytes=90 * mib, finished_mono=15.5, peak_rss_bytes=95 * mib),
    ]
    record.tasks = [task]
    record.kills = [KillRecord(11, "child", "p", "shop.import", "SIGKILL", "oom", 14.0, "kmsg", rss_bytes=240 * mib)]
    said = findings(record)
    assert any("the child started the task at 40.0 MiB" in sentence for sentence in said), said
    assert any("killed 4 s into its run, having grown by 50.0 MiB/s" in sentence for sentence in said), said


def test_a_bystander_is_named_when_the_task_that_grew_was_killed_next():
    """The grower killed too has no VmHWM at its end: its RSS at its own kill is its growth."""
    mib = 2**20
    record = _bystander_record(sibling_growth_mib=60)
    grower = record.tasks[1]
    grower.outcome = "killed"
    grower.executions = [Execution(12, 9.0, 0.0, start_rss_bytes=30 * mib, killed=True)]
    record.kills.append(
        KillRecord(12, "child", "g", "shop.resize", "SIGKILL", "oom", 12.5, "kmsg", rss_bytes=245 * mib)
    )
    [found] = bystanders(record)
    assert "shop.resize[g] in pid 12, running at the kill, grew 215.0 MiB above its start (by its own kill" in found


def test_a_chain_that_stopped_says_which_link_ended_it_and_what_never_ran():
    record = RunRecord(run_id="r", config=RunConfig("workflows", "256MiB", 2, 1))
    first = _task("f", "shop.fetch", chained=["shop.resize", "shop.store"], root_id="f")
    resize = _task("r", "shop.resize", "failed", "ValueError: odd", root_id="f", parent_id="f", sent_by="worker")
    record.tasks = [first, resize]
    assert chains_cut(record) == [
        "the chain shop.fetch[f] stopped after 2 of its 3 task(s): shop.resize[r] failed, so shop.store never ran "
        "(Celery sends a chain's next task only when the one before succeeded)"
    ]
    first.outcome, record.tasks = "killed", [first]
    [said] = chains_cut(record)
    assert said.startswith("the chain shop.fetch[f] stopped after 1 of its 3 task(s): its first was killed, so ")
    assert "shop.resize, shop.store never ran" in said and said in findings(record)
    store = _task("s", "shop.store", root_id="f", parent_id="r", sent_by="worker")
    first.outcome, resize.outcome, record.tasks = "succeeded", "succeeded", [first, resize, store]
    assert chains_cut(record) == []  # every link ran


def test_a_main_process_killed_right_after_a_child_says_what_spares_it():
    """Seen in CI: a pool child killed at 213 MiB, the main process 111 ms later at 62.5 MiB."""
    mib = 2**20
    record = RunRecord(run_id="r", config=RunConfig("alloc", "256MiB", 2, 1), status="worker_lost")
    record.worker.exit_code = -9
    record.kills = [
        KillRecord(21127, "child", "a", "alloc.allocate", "SIGKILL", "oom", 3539.542, "kmsg", rss_bytes=213 * mib),
        KillRecord(21118, "main", None, None, "SIGKILL", "oom", 3539.653, "kmsg", rss_bytes=62 * mib),
    ]
    [said] = [sentence for sentence in findings(record) if "main process exited" in sentence]
    assert "the kernel OOM-killed it at 62.0 MiB RSS" in said
    assert ", 111 ms after it killed pool child 21127 at 213.0 MiB. What helps: a worker_process_init" in said
    record.kills[0].kernel_time_mono = 3530.0  # long before: another story
    [alone] = [sentence for sentence in findings(record) if "main process exited" in sentence]
    assert "after it killed pool child" not in alone
