"""A user's Celery app as `oomlab agent` meets it: nothing of oomlab in it. Its name, broker and
queue come from the environment so that each test has its own."""

import os

from celery import Celery

app = Celery(
    os.environ["AGENT_TEST_APP"],
    broker=os.environ["AGENT_TEST_BROKER"],
    backend=os.environ["AGENT_TEST_BACKEND"],
)
app.conf.update(
    task_default_queue=os.environ["AGENT_TEST_QUEUE"],
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    task_track_started=True,
)


def _fill(mib: int) -> int:
    block = bytearray(mib * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return len(block)


@app.task
def hog(mib: int) -> int:
    return _fill(mib)


@app.task(acks_late=True, reject_on_worker_lost=True)
def poison(mib: int) -> int:
    return _fill(mib)


@app.task
def small() -> str:
    return "ok"


@app.task(ignore_result=True)
def nap(seconds: float) -> None:
    import time

    time.sleep(seconds)


@app.task
def external(mib: int, paced: bool = False) -> int:
    """Runs a program that allocates `mib` (`paced`: 8 MiB at a time, 5 ms apart, about 1 GiB/s); a
    program the kernel kills is this task's to handle."""
    import subprocess
    import sys

    code = f"b = bytearray({mib} * 2**20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
    if paced:
        code = (
            f"import time\nb = bytearray({mib} * 2**20)\n"
            "for i in range(0, len(b), 4096):\n b[i] = 1\n if i % (8 << 20) == 0: time.sleep(0.005)\n"
        )
    return subprocess.run([sys.executable, "-c", code], check=False).returncode


@app.task
def linger(seconds: float) -> None:
    """Sleeps with its result kept (STARTED, then its end): a task to kill while it runs."""
    import time

    time.sleep(seconds)
