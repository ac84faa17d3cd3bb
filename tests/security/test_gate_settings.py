"""`oomlab gate` reads its thresholds from ./pyproject.toml by default: one another user left in the
directory the gate runs from (a shared /tmp folder) could loosen it, so a pyproject.toml is read only
from a trusted directory, and otherwise ignored and said so; it is read as a bounded regular file."""

from __future__ import annotations

import os
import shutil
import subprocess

from tests.conftest import oomlab_cmd
from tests.security.test_outputs import FIXTURE

PLANTED = '[tool.oomlab.gate]\nfail = "not a threshold"\n'  # read, it would stop the gate (exit 2)


def _gate_from(cwd, tmp_path) -> subprocess.CompletedProcess:
    current = tmp_path / "current"
    shutil.copytree(FIXTURE, current)
    baseline = tmp_path / "baseline.json"
    subprocess.run(oomlab_cmd("baseline", "save", str(current), str(baseline), "--force"), check=True, timeout=60)
    return subprocess.run(
        oomlab_cmd("gate", "--current", str(current), "--baseline", str(baseline)),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_pyproject_another_user_left_where_the_gate_runs_is_ignored(public_tmp, other_user, tmp_path):
    shared = public_tmp / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    other_user.write(str(shared / "pyproject.toml"), PLANTED)
    result = _gate_from(shared, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "pyproject.toml ignored: its directory is not trusted" in result.stdout, result.stdout


def test_a_pyproject_that_is_a_fifo_is_one_sentence(tmp_path):
    here = tmp_path / "project"
    here.mkdir(mode=0o700)
    os.mkfifo(here / "pyproject.toml")
    result = _gate_from(here, tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "pyproject.toml cannot be read" in result.stderr


def test_a_pyproject_in_a_trusted_directory_is_read(tmp_path):
    here = tmp_path / "project"
    here.mkdir(mode=0o700)
    (here / "pyproject.toml").write_text(PLANTED)
    result = _gate_from(here, tmp_path)
    assert result.returncode == 2 and "not a threshold" in result.stderr, result.stderr
