"""Runs inside the user's worker: the probe that records each task, light and dependent on nothing else in oomlab."""
