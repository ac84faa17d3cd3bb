"""The benchmarks' own building blocks, so `python -m bench` does not rot between the runs that
quote it (the full benchmark is not part of the tests: it takes minutes and wants a quiet machine)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

MIB = 1 << 20


def test_the_kernel_truth_of_a_spike_is_its_size():
    from bench.fidelity import SPIKE_MIB, kernel_truth, psutil_growth

    assert abs(kernel_truth(0.001) - SPIKE_MIB * MIB) < 2 * MIB
    assert 0 < psutil_growth(0.05) <= SPIKE_MIB * MIB + 2 * MIB


def test_sampler_cost_is_measured_from_its_own_cpu_clock(monkeypatch):
    from bench import sampler_cost

    monkeypatch.setattr(sampler_cost, "SECONDS", 1.0)
    figures = sampler_cost.cost_for(2)
    assert figures["processes"] == 2
    assert figures["ticks_per_second"] > 50  # 100 Hz asked for, on a busy machine
    assert 0 < figures["core_percent"] < 100
    assert figures["cpu_us_per_rss_process_sample"] > 0
