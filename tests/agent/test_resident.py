"""The agent's code locked in memory (oomlab.agent.resident), in a fresh interpreter with a small
RLIMIT_MEMLOCK: what it touched is locked, the interpreter's own code first, never past the limit;
with no locked memory allowed, it says so. (Unprivileged, in a container: tests/agent/test_docker.py.)"""

from __future__ import annotations

import json
import subprocess
import sys

PIN = """
import json, os, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_MEMLOCK, (limit, limit))
from oomlab.agent.resident import pin_resident_code
pinned = pin_resident_code()
exe = os.path.realpath("/proc/self/exe")
locked_in_exe = 0
for line in open("/proc/self/smaps"):
    if not line[0].isupper():
        path = line.split()[-1] if len(line.split()) > 5 else ""
    elif line.startswith("Locked:") and (path == exe or "/libpython" in path):
        locked_in_exe += int(line.split()[1]) * 1024
vmlck = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmLck:"))
print(json.dumps({"locked": pinned.locked_bytes, "budget": pinned.budget_bytes, "error": pinned.error,
                  "vmlck": vmlck, "in_exe": locked_in_exe}))
"""


def pin(limit: int) -> dict:
    done = subprocess.run([sys.executable, "-c", PIN, str(limit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_touched_code_is_locked_within_the_limit_the_interpreter_first():
    found = pin(2 << 20)
    assert found["error"] is None
    assert 0 < found["locked"] <= found["budget"] < 2 << 20
    assert found["vmlck"] == found["locked"]  # the kernel's count agrees, nothing else locked
    assert found["in_exe"] > 0  # the interpreter's own code (its executable or libpython) came first


def test_a_larger_limit_locks_more():
    small, large = pin(1 << 20), pin(8 << 20)  # 8 MiB: the hard limit here, and in Docker's containers
    assert small["locked"] < large["locked"] <= large["budget"] < 8 << 20


def test_no_locked_memory_allowed_is_said():
    found = pin(0)
    assert found["locked"] == 0 and found["vmlck"] == 0
    assert found["error"] == "RLIMIT_MEMLOCK allows no locked memory"
