"""A soak's slope is stated only from enough points and a line that fits them: three tasks per child
once read "411.9 MiB per 1,000 tasks, steady" on a mix with no leak. Recorded figures, no worker."""

from __future__ import annotations

import random

from oomlab.run.load.soak import MIN_TASKS_PER_CHILD, Budget, Soak
from oomlab.workflows.recommend.load_proof import _slope

MIB = 2**20
BUDGET = Budget(256 * MIB, 2, 40 * MIB, 60 * MIB, 2 * MIB, None, 0.1)


def _findings(points: dict[int, list[int]]):
    soak = Soak(256 * MIB)
    for pid, rss in points.items():
        for i, value in enumerate(rss):
            soak.observe(pid, i * 0.1, value)
    return soak.findings(sum(map(len, points.values())), 150 * MIB, 10.0, BUDGET)


def test_three_points_per_child_are_not_enough_data():
    # a mix with no leak: each child's RSS after its tasks happened to rise over its first three
    found = _findings({1: [60 * MIB, 70 * MIB, 80 * MIB], 2: [61 * MIB, 72 * MIB, 81 * MIB]})
    assert found.growth_per_1000_tasks_per_child_bytes is None and not found.significant
    assert found.fit.startswith("not enough data") and str(MIN_TASKS_PER_CHILD) in found.fit
    assert found.projection is None and found.recycling is None
    assert "not enough data" in _slope(found, "prefork") and "steady" not in _slope(found, "prefork")


def test_a_mix_with_no_leak_reads_as_noise():
    rng = random.Random(7)
    found = _findings({pid: [60 * MIB + rng.randrange(0, 20 * MIB) for _ in range(12)] for pid in (1, 2)})
    assert not found.significant and found.r2 is not None and found.r2 < 0.8
    assert "steady" not in found.fit.replace("not a steady", "") and "R²" in found.fit
    assert "within noise" in _slope(found, "prefork") or "no growth" in _slope(found, "prefork")


def test_a_leak_reads_as_a_steady_line_with_its_fit():
    found = _findings({pid: [60 * MIB + i * 4 * MIB + pid * 1024 for i in range(8)] for pid in (1, 2)})
    assert found.significant and found.r2 == 1.0 and found.fit.startswith("a steady line (R² 1.00")
    assert found.growth_per_1000_tasks_per_child_bytes == 4000 * MIB
    assert "grew 3.9 GiB per 1,000 tasks (a steady line" in _slope(found, "prefork")


def test_a_rough_line_the_plan_refuses_as_a_leak_is_not_steady_in_the_proof_either():
    # a new user's proof read "a steady line (R² 0.81)" while recommend refused the leak below R² 0.9
    # and planned no recycling: one bar for both
    from oomlab.workflows.recommend.profile import LEAK_MIN_R2

    rng = random.Random(3)
    series = {pid: [60 * MIB + i * 3 * MIB + rng.randrange(0, 12 * MIB) for i in range(12)] for pid in (1,)}
    found = _findings(series)
    assert found.r2 is not None and 0.6 < found.r2 < LEAK_MIN_R2, found.r2
    assert not found.significant and "within noise" in _slope(found, "prefork")
