"""oomlab: real Celery workers under real memory limits, measured exactly.

The testing API is importable from here (`from harness import measure_peak, assert_peak_rss_below`);
it loads on first use, so the probe inside every worker imports nothing it does not need."""

__version__ = "0.1.0"

_EXPORTS = {
    "measure_peak": "harness.measure",
    "PeakMeasurement": "harness.measure",
    "assert_peak_rss_below": "harness.assertions",
    "assert_memory_kind_below": "harness.assertions",
    "assert_no_oom": "harness.assertions",
    "assert_oom_killed": "harness.assertions",
    "assert_requeued": "harness.assertions",
    "assert_run_peak_rss_below": "harness.assertions",
    "OomlabAssertionError": "harness.assertions",
    "WorkerSession": "harness.session",
    "WorkerOptions": "harness.session",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
