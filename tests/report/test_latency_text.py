"""A detector that appears to see a kill before its (inferred) time shows a bound, alike everywhere."""

from oomlab.report.html_run import detector_text
from oomlab.report.terminal import _latency


def test_a_negative_detector_latency_is_shown_as_a_bound_on_the_terminal_and_in_html():
    assert detector_text(-0.0588) == _latency(-0.0588) == "≤0 ms"
    assert detector_text(0.0031) == "3.1 ms" and _latency(0.0031) == "3.1 ms"
    assert detector_text(None) == _latency(None) == "-"
