"""The gate's default on growth with a floor, statistics by kind, several runs' facts as one, and a
detector latency that is never printed below zero."""

from __future__ import annotations

import pytest
from oomlab.errors import BadInput
from oomlab.record.digest import NameDigest
from oomlab.record.kinds import KindBytes, MemoryKinds, kind_bytes
from oomlab.record.stream import TaskLine
from oomlab.report.terminal import _latency
from oomlab.workflows.gate.flow import DEFAULT_THRESHOLDS
from oomlab.workflows.gate.run_checks import RunFacts
from oomlab.workflows.gate.runs import merge_facts
from oomlab.workflows.gate.stats import TaskStats, stats_of
from oomlab.workflows.gate.thresholds import Threshold, parse_threshold
from oomlab.workflows.gate.verdict import compare

MIB = 1 << 20


def test_a_percentage_and_a_floor_must_both_be_crossed():
    both = parse_threshold("growth:10%,+2MiB")
    assert both == Threshold("growth", percent=10.0, bytes=2 * MIB)
    assert str(both) == "growth:10%,+2.0 MiB"
    assert parse_threshold(str(both)) == both
    assert not both.exceeded(4 * MIB, 5 * MIB)  # +25 %, but 1 MiB: allocator noise on a small task
    assert not both.exceeded(100 * MIB, 105 * MIB)  # +5 MiB, but 5 %
    assert both.exceeded(100 * MIB, 111 * MIB)  # +11 %, +11 MiB
    assert both.exceeded(0, 3 * MIB) and not both.exceeded(0, MIB)  # from nothing: the floor decides
    assert parse_threshold("growth:10%").exceeded(4 * MIB, 5 * MIB)  # one bound alone still fires


@pytest.mark.parametrize("text", ["growth:10%,20%", "growth:+1MiB,+2MiB", "growth:10%,", "growth:10%,lots"])
def test_two_of_a_kind_or_garbage_is_bad_input(text):
    with pytest.raises(BadInput):
        parse_threshold(text)


def _task(peak: int, growth: int | None) -> TaskStats:
    stats = stats_of([peak])
    stats.growth_max = growth
    return stats


def test_the_default_is_growth_not_absolute_rss():
    default = [parse_threshold(text) for text in DEFAULT_THRESHOLDS]
    # the child's baseline (80 MiB) hides a 30 % growth of the task's own 20 MiB in absolute RSS
    result = compare({"t": _task(100 * MIB, 20 * MIB)}, {"t": _task(106 * MIB, 26 * MIB)}, default, {})
    assert [(c.threshold, c.failed) for c in result.checks] == [("growth:10%,+2.0 MiB", True)]
    # a small task's noise passes: +1 MiB is +50 % of 2 MiB, under the floor
    quiet = compare({"t": _task(82 * MIB, 2 * MIB)}, {"t": _task(83 * MIB, 3 * MIB)}, default, {})
    assert not quiet.regressions and quiet.checks


def test_a_baseline_without_growth_is_compared_on_peak_and_says_so():
    default = [parse_threshold(text) for text in DEFAULT_THRESHOLDS]
    result = compare({"t": _task(100 * MIB, None)}, {"t": _task(120 * MIB, 25 * MIB)}, default, {})
    assert [(c.threshold, c.failed) for c in result.checks] == [("peak:10%,+2.0 MiB", True)]
    assert any("compared as peak" in notice for notice in result.notices)


def test_kinds_at_the_end_prefer_the_tree_and_at_a_kill_the_kernel():
    kinds = MemoryKinds(
        process_end=KindBytes(anon=5, file=1, shmem=0),
        tree_end=KindBytes(anon=9, file=2, shmem=3),
        at_kill=KindBytes(anon=40, file=0, shmem=0),
    )
    assert kind_bytes(kinds, "anon") == 9
    assert kind_bytes(MemoryKinds(process_end=kinds.process_end), "anon") == 5
    assert kind_bytes(kinds, "anon", "at_kill") == 40
    assert kind_bytes(MemoryKinds(), "shmem") is None and kind_bytes(None, "anon", "at_kill") is None
    assert not MemoryKinds() and kinds
    with pytest.raises(ValueError):
        kind_bytes(kinds, "swap")
    digest = NameDigest()
    digest.add(TaskLine("a", "t", memory_kinds=kinds))
    digest.add(TaskLine("b", "t", memory_kinds=MemoryKinds(tree_end=KindBytes(anon=12, file=0, shmem=0))))
    largest = digest.kinds
    assert largest["anon_end"] == 12 and largest["anon_at_kill"] == 40 and largest["shmem_end"] == 3
    stats = stats_of([1])
    stats.kinds = largest
    assert stats.get("anon_end") == 12 and stats.get("file_at_kill") == 0
    assert parse_threshold("anon_end:+8MiB") == Threshold("anon_end", bytes=8 * MIB)


def test_several_runs_facts_keep_the_first_failure_and_sum_the_rest():
    good = RunFacts("app", "complete", None, 0, 1)
    lost = RunFacts("app", "worker_lost", "MemoryError", 2, 0)
    merged = merge_facts([good, lost, good])
    assert (merged.status, merged.message, merged.unattributed_kills, merged.never_started) == (
        "worker_lost",
        "MemoryError",
        2,
        2,
    )
    assert merge_facts([good]) == good


def test_a_latency_before_the_inferred_kill_is_a_bound_not_a_negative_figure():
    assert _latency(-0.0001) == "≤0 ms"
    assert _latency(0.0123) == "12.3 ms" and _latency(None) == "-"
