"""A steady slope needs enough points, a line that fits and a rise spread over them: one step (an
allocator keeping a freed buffer) is not a leak, and four points are not enough to tell."""

from __future__ import annotations

from oomlab.assemble.trend import fit_line

MIB = 1 << 20
# a new user's start RSS at concurrency 1: one 20 MiB step when the allocator kept a freed buffer
ONE_STEP = [int(mib * MIB) for mib in (47.0, 47.3, 47.3, 48.1, 48.2, 48.5, 68.5, 68.5)]


def test_a_line_fits_and_a_step_does_not_make_a_slope():
    line = fit_line([10 * i for i in range(8)])
    assert line.slope == 10 and line.r2 == 1.0 and line.doubt(6, 0.9) is None
    step = fit_line(ONE_STEP[2:])
    assert step.slope > 2 * MIB  # least squares alone would call it a slope of MiB per task
    assert "in one step: a step is not a slope" in step.doubt(6, 0.9)
    assert "not enough data" in fit_line(ONE_STEP[:4]).doubt(6, 0.9)
    noisy = fit_line([0, 5, 1, 6, 2, 7, 3, 8])
    assert "fits it poorly" in noisy.doubt(6, 0.9, max_step_share=1.0)
