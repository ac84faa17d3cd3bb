"""oomlab from tests: the pytest plugin, the worker session, assertions, markers and measure_peak."""
