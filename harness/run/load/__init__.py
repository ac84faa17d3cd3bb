"""Load runs: a send schedule (rate, stages, closed loop), a lazily drawn task mix, stats
per task name in fixed memory, per-task records streamed to tasks.jsonl, and soak findings.

A load run's memory is per task name plus the tasks in flight: a finished task is written to the
stream and forgotten, so a million tasks cost what a thousand do."""
