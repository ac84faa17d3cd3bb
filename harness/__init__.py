"""oomlab: real Celery workers under real memory limits, measured exactly.

This module is oomlab's public face: what a scenario is written with (`Param`, `Plan`, `PlanCalls`,
`TaskCall`, `Variant`, `RunContext`, `Kind`, `Mix`) and what a test asserts with (`measure_peak`,
`assert_peak_rss_below`, `WorkerSession`, ...). Everything else lives in named submodules and may
change. Names load on first use, so the probe inside every worker imports nothing it does not need."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from oomlab.version import __version__ as __version__  # re-exported: oomlab.__version__

_EXPORTS = {
    # writing a scenario
    "Param": "oomlab.config.scenario",
    "Plan": "oomlab.config.scenario",
    "PlanCalls": "oomlab.config.plan_calls",
    "RunContext": "oomlab.config.scenario",
    "TaskCall": "oomlab.config.scenario",
    "Variant": "oomlab.config.scenario",
    "Kind": "oomlab.config.load_mix",
    "Mix": "oomlab.config.load_mix",
    "long_tail": "oomlab.config.load_mix",
    # testing
    "measure_peak": "oomlab.testing.measure",
    "PeakMeasurement": "oomlab.testing.measure",
    "assert_peak_rss_below": "oomlab.testing.assertions",
    "assert_memory_kind_below": "oomlab.testing.assertions",
    "assert_no_oom": "oomlab.testing.assertions",
    "assert_oom_killed": "oomlab.testing.assertions",
    "assert_requeued": "oomlab.testing.assertions",
    "assert_run_peak_rss_below": "oomlab.testing.assertions",
    "OomlabAssertionError": "oomlab.testing.assertions",
    "WorkerSession": "oomlab.testing.session",
    "WorkerOptions": "oomlab.testing.session",
}
__all__ = [
    "Kind",
    "Mix",
    "OomlabAssertionError",
    "Param",
    "PeakMeasurement",
    "Plan",
    "PlanCalls",
    "RunContext",
    "TaskCall",
    "Variant",
    "WorkerOptions",
    "WorkerSession",
    "assert_memory_kind_below",
    "assert_no_oom",
    "assert_oom_killed",
    "assert_peak_rss_below",
    "assert_requeued",
    "assert_run_peak_rss_below",
    "long_tail",
    "measure_peak",
]  # the names above; a test keeps both lists equal

if TYPE_CHECKING:
    from oomlab.config.load_mix import Kind, Mix, long_tail
    from oomlab.config.plan_calls import PlanCalls
    from oomlab.config.scenario import Param, Plan, RunContext, TaskCall, Variant
    from oomlab.testing.assertions import (
        OomlabAssertionError,
        assert_memory_kind_below,
        assert_no_oom,
        assert_oom_killed,
        assert_peak_rss_below,
        assert_requeued,
        assert_run_peak_rss_below,
    )
    from oomlab.testing.measure import PeakMeasurement, measure_peak
    from oomlab.testing.session import WorkerOptions, WorkerSession


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'oomlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
