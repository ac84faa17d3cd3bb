"""The user's app as `python -m bench agent` runs it, bare and under `oomlab agent`: nothing of
oomlab in it (the agent loads the probe through CELERY_LOADER). Broker, backend and queue come from
the environment."""

from __future__ import annotations

import os

from celery import Celery

app = Celery("bench-agent", broker=os.environ["BENCH_AGENT_REDIS"], backend=os.environ["BENCH_AGENT_REDIS"])
app.conf.update(task_default_queue=os.environ["BENCH_AGENT_QUEUE"])


@app.task(name="bench.noop")
def noop(index: int) -> int:
    return index


@app.task(name="bench.hog")
def hog(mib: int) -> int:
    block = bytearray(mib * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return len(block)


@app.task(name="bench.hold")
def hold(mib: int, seconds: float) -> int:
    """Holds `mib` for `seconds`: the worker's group near its limit without a kill (the agent's cost there)."""
    import time

    block = bytearray(mib * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(seconds)
    return len(block)
