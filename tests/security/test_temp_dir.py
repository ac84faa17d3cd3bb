"""A TMPDIR another user can write without the sticky bit is refused (exit 3) before anything is made
in it: there they could move a new directory of oomlab's away and put their own in its place (the
worker's working directory, whose package Celery imports first, or the embedded broker's socket)."""

from __future__ import annotations

import os

import pytest

from tests.agent.conftest import worker_command
from tests.security.test_agent import _agent_refuses

REFUSED = "refusing the temporary directory (TMPDIR)"


@pytest.fixture(params=["theirs", "root's, mode 777"])
def open_tmp(request, public_tmp, other_user):
    """A TMPDIR the other user owns, or root's that anybody can write, neither sticky."""
    path = public_tmp / "tmp"
    path.mkdir()
    os.chmod(path, 0o777)
    if request.param == "theirs":
        os.chown(path, other_user.uid, other_user.gid)
    return path


def test_a_run_refuses_a_tmpdir_others_can_swap_directories_in(oomlab, open_tmp, tmp_path):
    result = oomlab("run", "noop", "--tasks", "1", env={"TMPDIR": str(open_tmp)})
    assert result.code == 3, result.stderr
    assert result.stderr.count("\n") == 1 and f"{REFUSED} {open_tmp}" in result.stderr, result.stderr
    assert os.listdir(open_tmp) == [] and not (tmp_path / "results").exists()


def test_the_agent_refuses_it_too(open_tmp, tmp_path):
    _agent_refuses(tmp_path, tmp_path, worker_command(), f"{REFUSED} {open_tmp}", {"TMPDIR": str(open_tmp)})
    assert os.listdir(open_tmp) == []


@pytest.mark.integration
def test_a_sticky_tmpdir_like_tmp_is_used(oomlab, public_tmp):
    sticky = public_tmp / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    result = oomlab("run", "noop", "--tasks", "1", env={"TMPDIR": str(sticky)})
    assert result.code == 0 and result.record["status"] == "complete", result.stderr
    assert os.listdir(sticky) == []  # the worker's directories are gone with it
