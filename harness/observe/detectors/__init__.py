"""Detectors: each tells, as early as the kernel allows, that a process in the run's group died."""
