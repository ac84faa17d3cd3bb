"""recommend's leak finding: a steady rise of start RSS in one child, or "not enough data", never a
slope from one step or four points; on real runs of leak (a leak) and alloc (none)."""

from __future__ import annotations

import json

import pytest
from oomlab.workflows.recommend.profile import leak_slope

from tests.assemble.test_trend import MIB, ONE_STEP


def test_leak_claims_need_a_steady_rise_in_one_child():
    slope, note = leak_slope([ONE_STEP])
    assert slope == 0 and note.startswith("no leak") and "one step" in note
    slope, note = leak_slope([ONE_STEP[:4], ONE_STEP[:5]])
    assert slope == 0 and note.startswith("not enough data") and "was 5" in note
    slope, note = leak_slope([[50 * MIB + 16 * MIB * i for i in range(10)]])
    assert slope == 16 * MIB and "R² 1.00" in note
    assert leak_slope([[50 * MIB] * 10]) == (0.0, None)  # flat: nothing to say


@pytest.mark.integration
@pytest.mark.parametrize(
    "args, leaking, phrase",
    [
        (("leak", "--memory", "256MiB", "--tasks", "10"), True, "rose along a line"),
        (("alloc", "--memory", "256MiB", "--tasks", "4", "--param", "over=0"), False, "not enough data for a leak"),
    ],
)
def test_the_measuring_run_finds_a_leak_only_on_a_steady_rise(oomlab, tmp_path, args, leaking, phrase):
    result = oomlab("recommend", *args, "--no-prove", "--results", str(tmp_path), timeout=240)
    assert result.code == 0, result.stderr
    profile = json.load(open(result.stdout.strip().splitlines()[-1]))["profile"]
    assert (profile["leak_bytes_per_task"] > 8 * MIB) is leaking and phrase in profile["leak_note"], profile
    assert phrase in result.stdout
