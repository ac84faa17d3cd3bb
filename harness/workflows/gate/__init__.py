"""The CI gate on task memory: per-task peak statistics saved as a baseline, compared with a new
run under pytest-benchmark-style thresholds (`peak:10%`) or absolute ones (`peak:+32MiB`)."""
