"""Only in the cgroup v2 VM lane, as root (tests/conftest.py leaves this folder out elsewhere)."""

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile

import pytest
from oomlab.errors import EXIT_PERMISSION

from tests.conftest import TIME_SCALE, oomlab_cmd

pytestmark = pytest.mark.vm


def test_the_kernel_mounts_cgroup_v2_only():
    mounts = [line.split() for line in open("/proc/self/mounts")]
    assert [m[1] for m in mounts if m[2] == "cgroup2"] == ["/sys/fs/cgroup"]
    assert not [m for m in mounts if m[2] == "cgroup"], "a v1 hierarchy is mounted"
    assert "memory" in open("/sys/fs/cgroup/cgroup.controllers").read().split()


def test_a_user_without_a_delegated_subtree_is_told_what_would_work():
    stranger = pwd.getpwnam("stranger")
    results = tempfile.mkdtemp()
    os.chown(results, stranger.pw_uid, stranger.pw_gid)
    argv = [
        "setpriv",
        f"--reuid={stranger.pw_uid}",
        f"--regid={stranger.pw_gid}",
        "--init-groups",
        "env",
        f"HOME={stranger.pw_dir}",
        *oomlab_cmd("run", "alloc", "--results", results),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120 * TIME_SCALE)
    assert done.returncode == EXIT_PERMISSION, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    [sentence] = lines
    assert sentence.startswith(
        "oomlab: cannot create a memory cgroup: no cgroup v2 directory above this process "
        f"is writable by uid {stranger.pw_uid} with the memory controller delegated; "
    )
    assert "systemd-run --user --scope -p Delegate=yes" in sentence
