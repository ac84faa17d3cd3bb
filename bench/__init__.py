"""oomlab's benchmarks: exactness, detection speed and overhead, side by side with the tools users
have today. `python -m bench [all|fidelity|detection|overhead|sampler|plan]`; not part of the tests."""
