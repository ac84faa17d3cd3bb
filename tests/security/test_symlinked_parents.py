"""The trust check walks a path as the kernel will, with lstat: a symlink another user owns (in a
sticky, world-writable folder such as /tmp) that points at a directory of root's never makes that
directory pass, since its owner can point it elsewhere between the check and the use."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def linked_private(public_tmp, other_user, tmp_path):
    """(a private directory of root's, the same directory through the other user's link in a sticky
    world-writable folder)."""
    os.chmod(public_tmp, 0o1777)
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    other_user.symlink(str(private), str(public_tmp / "link"))
    return private, public_tmp / "link"


def test_a_share_reached_through_another_users_link_is_refused(oomlab, linked_private):
    private, link = linked_private
    (private / "share").mkdir(mode=0o700)
    result = oomlab("run", "alloc", "--attach", str(link / "share"), "--start-timeout", "3", timeout=60)
    assert result.code == 3, result.stderr
    assert result.stderr.count("\n") == 1 and "refusing the share directory" in result.stderr
    assert "symbolic link" in result.stderr


def test_a_state_directory_reached_through_another_users_link_is_refused(oomlab, linked_private):
    private, link = linked_private
    (private / "state").mkdir(mode=0o700)
    result = oomlab("run", "alloc", "--tasks", "1", env={"OOMLAB_STATE_DIR": str(link / "state")}, timeout=60)
    assert result.code == 3, result.stderr
    assert result.stderr.count("\n") == 1 and "refusing the state directory" in result.stderr


def test_a_link_of_roots_own_is_followed_and_its_target_checked(tmp_path, public_tmp, other_user):
    from oomlab.trust import untrusted_reason

    private = tmp_path / "private"
    (private / "inner").mkdir(mode=0o700, parents=True)
    (tmp_path / "mine").symlink_to(private)
    assert untrusted_reason(str(tmp_path / "mine" / "inner")) is None
    theirs = public_tmp / "theirs"
    theirs.mkdir()
    os.chown(theirs, other_user.uid, other_user.gid)
    (theirs / "inner").mkdir(mode=0o700)
    (tmp_path / "to-theirs").symlink_to(theirs)
    assert "belongs to uid" in untrusted_reason(str(tmp_path / "to-theirs" / "inner"))
    (tmp_path / "up").symlink_to(private / "inner")
    assert untrusted_reason(f"{tmp_path}/up/../inner") is None  # `..` as the kernel takes it, not lexically


@pytest.mark.parametrize("where", ["--results", "OOMLAB_STATE_DIR"])
def test_nothing_is_made_through_another_users_link_before_the_refusal(oomlab, linked_private, where):
    """`/tmp/shared/x -> /etc`: `--results /tmp/shared/x/oomlab-created/deep` once made
    /etc/oomlab-created before it was refused. The nearest existing directory is checked first."""
    private, link = linked_private
    deep = str(link / "oomlab-created" / "deep")
    if where == "--results":
        result = oomlab("run", "alloc", "--tasks", "1", "--results", deep, timeout=60)
    else:
        result = oomlab("run", "alloc", "--tasks", "1", env={"OOMLAB_STATE_DIR": deep}, timeout=60)
    assert result.code == 3, result.stderr
    assert result.stderr.count("\n") == 1 and "symbolic link" in result.stderr, result.stderr
    assert list(private.iterdir()) == [], "a directory was made through the other user's link"
    assert result.stdout == "", "a run directory that was never made was printed"


def test_make_dirs_makes_each_missing_level_of_a_trusted_path(tmp_path):
    from oomlab.trust import make_dirs

    assert make_dirs(str(tmp_path / "a" / "b" / "c"), "results directory", 0o700)
    assert (tmp_path / "a" / "b" / "c").is_dir() and os.stat(tmp_path / "a" / "b").st_mode & 0o777 == 0o700
    assert not make_dirs(str(tmp_path / "a" / "b"), "results directory")
