"""A reader that goes away (`oomlab … | head -1`) is not an internal error: the command runs on to
its own exit code, prints no "internal error" and leaves no crash log."""

from __future__ import annotations

import glob
import os
import subprocess

import pytest

from tests.conftest import oomlab_cmd


def run_into_closed_pipe(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    read, write = os.pipe()
    os.close(read)  # every write meets a closed pipe: EPIPE, as after `head -1` has exited
    try:
        return subprocess.run(oomlab_cmd(*args), stdout=write, stderr=subprocess.PIPE, text=True, timeout=120, env=env)
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "args, code",
    [
        (("scenarios",), 0),
        (("--help",), 0),
        (("gate", "--current", "/nonexistent-run"), 2),
    ],
)
def test_a_closed_stdout_keeps_the_commands_exit_code(tmp_path, args, code):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    result = run_into_closed_pipe(*args, env=env)
    assert result.returncode == code, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert not glob.glob(os.path.join(tmp_path, "oomlab-crash-*"))


@pytest.mark.integration
def test_a_gate_regression_into_a_closed_pipe_still_exits_7(oomlab, tmp_path):
    small, big = (
        oomlab("run", "alloc", "--param", "over=0", "--tasks", "2", "--param", f"sizes={mib}") for mib in (8, 40)
    )
    assert (small.code, big.code) == (0, 0), big.stderr
    baseline = str(tmp_path / "baseline.json")
    assert oomlab("baseline", "save", small.run_dir, baseline).code == 0
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    result = run_into_closed_pipe("gate", "--baseline", baseline, "--current", big.run_dir, env=env)
    assert result.returncode == 7, result.stderr
    assert "internal error" not in result.stderr and not glob.glob(os.path.join(tmp_path, "oomlab-crash-*"))
