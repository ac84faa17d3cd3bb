"""Watching the worker from outside: the monitor, the sampler, detectors, profiles, and the evidence they freeze."""
