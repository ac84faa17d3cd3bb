"""One rule for every printed duration: three significant figures at most, no trailing zeros."""

from __future__ import annotations

import pytest
from oomlab.config.durations import format_seconds


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.000412, "0.41 ms"),
        (0.0031, "3.1 ms"),
        (0.0523, "52.3 ms"),
        (0.30000000000000004, "300 ms"),
        (0.4567, "457 ms"),
        (0.9996, "1 s"),
        (1.0, "1 s"),
        (2.5, "2.5 s"),
        (12.345, "12.3 s"),
        (75.4, "75 s"),
        (-0.25, "-250 ms"),
    ],
)
def test_every_duration_is_rounded_by_one_rule(seconds, text):
    assert format_seconds(seconds) == text
