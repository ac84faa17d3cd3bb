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


def _block(mib: int) -> bytearray:
    block = bytearray(mib * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return block


def _fill(mib: int) -> int:
    return len(_block(mib))


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
def external(mib: int, paced: bool = False, hold: int = 0, until: str | None = None) -> int:
    """Runs a program that allocates `mib` (`paced`: 8 MiB at a time, 5 ms apart, about 1 GiB/s); a
    program the kernel kills is this task's to handle. `hold`: the task holds that many MiB while its
    program runs and after, until the file `until` exists; the program makes itself the OOM killer's
    first choice (oom_score_adj 1000), so the kill is the program's, not the larger task's."""
    import os
    import subprocess
    import sys
    import time

    code = f"b = bytearray({mib} * 2**20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
    if paced:
        code = (
            f"import time\nb = bytearray({mib} * 2**20)\n"
            "for i in range(0, len(b), 4096):\n b[i] = 1\n if i % (8 << 20) == 0: time.sleep(0.005)\n"
        )
    if hold:
        code = f"open('/proc/self/oom_score_adj', 'w').write('1000')\n{code}"
    held = _block(hold)
    returncode = subprocess.run([sys.executable, "-c", code], check=False).returncode
    deadline = time.monotonic() + 60
    while until and not os.path.exists(until) and time.monotonic() < deadline:
        time.sleep(0.01)
    del held
    return returncode


@app.task
def helper(code: str, uid: int, gid: int, fork: bool = False) -> int:
    """Runs `code` as another user: in a program it starts (which inherits what the task's process
    leaves inheritable, as os.system's would), or in a child forked from the task's process (which
    holds whatever that process holds), as a task that hands work to a less trusted helper does."""
    import os
    import subprocess

    if not fork:
        argv = ["/usr/bin/python3", "-c", code]
        return subprocess.run(argv, close_fds=False, user=uid, group=gid, extra_groups=[], cwd="/").returncode
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            exec(code, {})
        finally:
            os._exit(0)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@app.task
def linger(seconds: float) -> None:
    """Sleeps with its result kept (STARTED, then its end): a task to kill while it runs."""
    import time

    time.sleep(seconds)
