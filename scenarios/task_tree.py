"""Tasks whose memory is in other processes: a program run with subprocess, a forked helper, a
multiprocessing pool. Each process a task starts is born in its pool child's leaf memory cgroup,
so the task's tree peak counts it; the last task's program is too big and is OOM-killed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from oomlab import Param, Plan, RunContext, TaskCall, Variant
from oomlab.scenarios._common import MIB, scenario_app, touched_bytes

description = "tasks run programs, fork helpers and multiprocessing pools: the task's whole tree is measured"
app = scenario_app("task_tree")
PARAMS = [
    Param("program_mib", 64, "MiB the program a task runs allocates"),
    Param("own_mib", 16, "MiB the task allocates itself while its program runs"),
    Param("kill", True, "end with a program larger than the limit (OOM-killed, attributed to its task)"),
    Param("alternate", True, "every other task's program allocates twice program_mib"),
    Param("hold", 0.0, "seconds each program keeps its memory before it exits (its peaks overlap its neighbours')"),
]
DEFAULTS = {"memory": "256MiB", "concurrency": 1, "tasks": 4}
VARIANTS = [
    Variant("bad", "the task maps work over a multiprocessing.Pool (fails in prefork: daemonic)"),
    Variant("fixed", "the task maps work over a billiard.Pool (what works in prefork)"),
    Variant("subprocess", "the task runs a program with subprocess.run"),
    Variant("fork", "the task forks a helper that allocates, and waits for it"),
    Variant("write", "the task writes program_mib MiB to a file and reads it back: page cache, not need"),
]
_POOL_LIBRARY = {"bad": "multiprocessing", "fixed": "billiard"}

# the program: allocate N MiB, then report its own kernel-measured figures
PROGRAM = (
    "import sys\n"
    "b = b'\\x01' * int(float(sys.argv[1]) * 1048576)\n"
    "s = open('/proc/self/status').read()\n"
    "print({k: int(l.split()[1]) * 1024 for l in s.splitlines() for k in ('VmHWM', 'RssAnon') if l.startswith(k + ':')})\n"
    "import time; time.sleep(float(sys.argv[2]))\n"
)


@app.task(name="task_tree.run_program")
def run_program(mib: float, own_mib: float, hold: float = 0.0) -> dict:
    """Allocate `own_mib` in the task, run a program that allocates `mib` (and keeps it `hold`
    seconds) while holding it."""
    held = touched_bytes(own_mib)
    done = subprocess.run([sys.executable, "-c", PROGRAM, str(mib), str(hold)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the program exited with {done.returncode}")
    report = json.loads(done.stdout.replace("'", '"'))
    return {**report, "held": len(held)}


@app.task(name="task_tree.fork_helper")
def fork_helper(mib: float, own_mib: float) -> int:
    held = touched_bytes(own_mib)
    pid = os.fork()
    if pid == 0:  # the helper
        block = touched_bytes(mib)
        os._exit(0 if block else 1)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the helper ended with {os.waitstatus_to_exitcode(status)}")
    return len(held)


@app.task(name="task_tree.write_file")
def write_file(mib: float) -> int:
    """Write `mib` MiB to a temporary file a MiB at a time, read it back, remove it: every page
    is charged to the task's leaf as page cache, which the kernel reclaims under the limit."""
    chunk = b"\x02" * MIB
    read = 0
    with tempfile.TemporaryFile() as handle:
        for _ in range(int(mib)):
            handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())
        handle.seek(0)
        while block := handle.read(MIB):
            read += len(block)
    return read


def _square_block(mib: float) -> int:
    return len(touched_bytes(mib))


@app.task(name="task_tree.pool_map")
def pool_map(mib: float, library: str) -> int:
    """Two workers each allocate `mib`/2 MiB. `multiprocessing` fails inside a prefork child."""
    if library == "billiard":
        from billiard import Pool
    else:
        from multiprocessing import Pool
    with Pool(2) as workers:
        return sum(workers.map(_square_block, [mib / 2, mib / 2]))


def plan(ctx: RunContext) -> Plan:
    mib, own = ctx.params["program_mib"], ctx.params["own_mib"]
    count = int(ctx.tasks or 4)
    calls = []
    for index in range(count):
        size = mib * (1 + index % 2) if ctx.params["alternate"] else mib
        if ctx.variant == "write":
            call = TaskCall(write_file.name, (size,), label=f"write {size:.0f} MiB")
        elif ctx.variant == "fork":
            call = TaskCall(fork_helper.name, (size, own), label=f"fork {size:.0f} MiB")
        elif ctx.variant in _POOL_LIBRARY:
            library = _POOL_LIBRARY[ctx.variant]
            call = TaskCall(pool_map.name, (size, library), label=f"{library} {size:.0f} MiB")
        else:
            call = TaskCall(run_program.name, (size, own, ctx.params["hold"]), label=f"program {size:.0f} MiB")
        calls.append(call)
    if ctx.params["kill"] and ctx.variant in ("subprocess", "fork"):
        over = ctx.limit_bytes * 1.25 / MIB
        task = fork_helper if ctx.variant == "fork" else run_program
        calls.append(TaskCall(task.name, (over, own), label=f"over-limit {over:.0f} MiB"))
    return Plan(calls, timeout=60.0)
