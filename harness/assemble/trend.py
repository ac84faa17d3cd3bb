"""A straight line through a series (least squares) and whether it is a steady slope: enough points,
a good fit (R²), and a rise spread over the series rather than made in one step. A leak claim rests
on a steady slope; a single jump (an allocator keeping a freed buffer, a cache filled once) fits a
line badly or puts most of the rise in one step, and is not one. Shared by recommend's leak finding
and anything else that reads a trend from a few measured points."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from oomlab.config.sizes import format_size

# what a steady line's fit must explain, for every growth oomlab calls one (recommend's leak, a load
# run's soak slope): one bar, so a proof never calls "steady" what the plan refused as a leak
STEADY_MIN_R2 = 0.9


@dataclass(frozen=True)
class LineFit:
    points: int
    slope: float  # per step (per point), least squares
    r2: float  # 1 - residual / total variance: 1.0 a perfect line (a flat series too)
    rise: float  # last value minus first
    largest_step: float  # the largest increase between neighbouring points

    def doubt(
        self,
        min_points: int,
        min_r2: float,
        max_step_share: float = 0.5,
        show: Callable[[float], str] = lambda value: format_size(int(value)),
    ) -> str | None:
        """Why this is no steady slope, in one clause (None: it is one). `max_step_share`: the most of
        the rise one step may make."""
        if self.points < min_points:
            return f"not enough data: {self.points} point(s), a slope needs at least {min_points}"
        if self.rise > 0 and self.largest_step > max_step_share * self.rise:
            return f"it rose {show(self.rise)}, {show(self.largest_step)} of it in one step: a step is not a slope"
        if self.r2 < min_r2:
            return f"a straight line fits it poorly (R² {self.r2:.2f}, below {min_r2:.2f})"
        return None


def fit_line(values: Sequence[float]) -> LineFit:
    """The least-squares line through values against their index."""
    n = len(values)
    if n < 2:
        return LineFit(n, 0.0, 1.0, 0.0, 0.0)
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    var_x = sum((i - mean_x) ** 2 for i in range(n))
    slope = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values)) / var_x
    total = sum((v - mean_y) ** 2 for v in values)
    residual = sum((v - (mean_y + slope * (i - mean_x))) ** 2 for i, v in enumerate(values))
    steps = [b - a for a, b in pairwise(values)]
    return LineFit(
        points=n,
        slope=slope,
        r2=1.0 - residual / total if total else 1.0,
        rise=values[-1] - values[0],
        largest_step=max(0.0, *steps),
    )
