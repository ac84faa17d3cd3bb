"""Memory by kind against the OOM killer, the shared-process pools, and runs that did not do their
work: real workers, real limits, real kills."""

from __future__ import annotations

import pytest

from tests.conftest import assert_nothing_left

pytestmark = pytest.mark.integration
MIB = 2**20


def test_a_mapped_file_near_the_limit_survives_as_page_cache(oomlab):
    result = oomlab("run", "memory-kinds", "--variant", "file", "--param", "mib=224")
    assert result.code == 0, result.stderr
    record = result.record
    task = record["tasks"][0]
    assert task["outcome"] == "succeeded" and not record["kills"]
    assert task["memory_kinds"]["tree_end"]["file"] >= 160 * MIB  # the task's leaf holds it as file pages
    assert record["summary"]["group_peak_bytes"] >= 0.95 * record["summary"]["limit_bytes"]
    assert any("reclaims before it kills" in f for f in record["summary"]["findings"])
    assert_nothing_left(record["run_id"])


@pytest.mark.parametrize("kind", ["shmem", "anon"])
def test_the_same_size_in_shmem_or_anonymous_memory_is_killed(oomlab, kind):
    result = oomlab("run", "memory-kinds", "--variant", kind, "--param", "mib=224")
    record = result.record
    task = record["tasks"][0]
    assert task["outcome"] == "killed", (task["outcome"], record["kills"])
    kill = record["kills"][0]
    assert kill["task_id"] == task["id"] and kill["role"] == "child"
    assert kill["kinds"][kind] >= 160 * MIB  # the kernel's own split at the kill
    assert task["memory_kinds"]["at_kill"] == kill["kinds"]
    assert_nothing_left(record["run_id"])


@pytest.mark.parametrize("pool", ["solo", "threads", "gevent", "eventlet"])
def test_shared_process_pools_report_the_process_and_never_claim_an_exact_task_peak(oomlab, pool):
    concurrency = "1" if pool == "solo" else "2"
    result = oomlab("run", "alloc", "--pool", pool, "--concurrency", concurrency, "--tasks", "4", "--param", "over=0")
    assert result.code == 0, result.stderr
    record = result.record
    assert record["status"] == "complete"
    tasks = record["tasks"]
    assert [t["outcome"] for t in tasks] == ["succeeded"] * 4
    assert not any(t["peak_is_exact"] for t in tasks)
    assert all(f"({pool} pool)" in t["peak_note"] for t in tasks)
    if pool != "solo":  # two at a time: some task's figure names the other task sharing the process
        assert any("other task" in t["peak_note"] for t in tasks)
    main = next(p for p in record["processes"] if p["role"] == "main")
    assert main["tasks_at_peak"] and set(main["tasks_at_peak"]) <= {t["id"] for t in tasks}
    assert main["peak_rss_bytes"] >= max(t["peak_rss_bytes"] for t in tasks)
    assert record["summary"]["peak_scope"].startswith("process")
    assert_nothing_left(record["run_id"])


def test_memoryerror_ends_the_worker_and_the_run_says_so(oomlab):
    result = oomlab("run", "worker-death", "--variant", "bad")
    assert result.code == 11, result.stderr  # EXIT_WORKER_LOST
    record = result.record
    assert record["status"] == "worker_lost"
    assert record["summary"]["outcomes"]["never_started"] == 3
    assert any("MemoryError" in f and "prefork worker" in f for f in record["summary"]["findings"])
    assert "MemoryError" in record["worker"]["lost_cause"]
    assert_nothing_left(record["run_id"])


def test_memoryerror_caught_in_the_task_keeps_the_worker(oomlab):
    result = oomlab("run", "worker-death", "--variant", "fixed")
    assert result.code == 0, result.stderr
    assert [t["outcome"] for t in result.record["tasks"]] == [
        "succeeded",
        "failed",
        "succeeded",
        "succeeded",
        "succeeded",
    ]


def test_a_run_past_its_timeout_is_not_complete(oomlab):
    result = oomlab("run", "worker-death", "--variant", "timeout")
    assert result.code == 9, result.stderr
    record = result.record
    assert record["status"] == "timed_out"
    assert any("timed out" in f for f in record["summary"]["findings"])
    assert_nothing_left(record["run_id"])
