"""The rules themselves, in one place each: which directories and files are trusted (oomlab.trust)
and what is masked before anything is written down (oomlab.record.redact)."""

from __future__ import annotations

import os

import pytest
from oomlab.errors import NoPermission
from oomlab.record.redact import mask_settings, mask_urls, safe_url, secret_name, without_password
from oomlab.record.schema import RunRecord
from oomlab.trust import (
    RefusedLink,
    app_top_name,
    check_importable,
    check_trusted_dir,
    create_private,
    open_nofollow,
    private_dir,
    untrusted_import_reason,
    untrusted_reason,
)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("amqp://guest:guest@127.0.0.1:5672//", "amqp://guest:***@127.0.0.1:5672//"),
        ("redis://:s3cr@t@redis:6379/0", "redis://:***@redis:6379/0"),  # an unencoded @ in the password
        ("redis://redis:6379/0", "redis://redis:6379/0"),
        ("redis+socket:///run/x/redis.sock", "redis+socket:///run/x/redis.sock"),
        ("sqla+postgresql://u:p@db/test?password=p2&x=1", "sqla+postgresql://u:***@db/test?password=***&x=1"),
        ("broker redis://u:pw@h/0 is unreachable (Error 111)", "broker redis://u:***@h/0 is unreachable (Error 111)"),
    ],
)
def test_a_url_loses_its_password_and_keeps_the_rest(url, masked):
    assert safe_url(url) == masked


def test_a_client_message_loses_every_piece_of_the_password_it_quotes():
    said = "Port could not be cast to integer value as 'S3cret'"
    assert without_password(said, "redis://app:S3cret/PW@h:1/0") == "Port could not be cast to integer value as '***'"
    # a short piece is masked where it is quoted, never inside a word
    assert without_password("cannot reach (as 'ab')", "redis://:ab/c@h/0") == "cannot reach (as '***')"
    assert without_password("[Errno 111] Connection refused", "amqp://guest:guest@h:1//") == (
        "[Errno 111] Connection refused"
    )


def test_secret_names_and_nested_settings_are_masked():
    assert all(map(secret_name, ("password", "database_password", "api_token", "security_key", "redis_password")))
    assert not any(map(secret_name, ("tasks", "keyboard", "task_default_routing_key", "passes", "monkey_count")))
    settings = {
        "broker_url": "redis://:pw@h/0",
        "broker_transport_options": {"sentinel_kwargs": {"password": "pw"}},
        "api_token": "tok",
        "unset_password": None,
        "sizes": [1, 2],
    }
    assert mask_settings(settings) == {
        "broker_url": "redis://:***@h/0",
        "broker_transport_options": {"sentinel_kwargs": {"password": "***"}},
        "api_token": "***",
        "unset_password": None,
        "sizes": [1, 2],
    }
    # elsewhere a key is data (a task's name), never masked; only the URLs in it are
    summary = {"tasks.refresh_token": {"peak": 5, "error": "redis://:pw@h/0 refused"}}
    assert mask_urls(summary) == {"tasks.refresh_token": {"peak": 5, "error": "redis://:***@h/0 refused"}}


def test_a_record_masks_its_settings_and_parameters():
    record = RunRecord(
        run_id="r",
        config={"params": {"db_password": "pw", "sizes": [1]}, "celery_conf": {"redis_password": "pw"}},
        environment={},
        worker={"celery_conf": {"security_key": "/k.pem", "task_default_routing_key": "rk"}},
    )
    data = record.to_json()
    assert data["config"] == {"params": {"db_password": "***", "sizes": [1]}, "celery_conf": {"redis_password": "***"}}
    assert data["worker"]["celery_conf"] == {"security_key": "***", "task_default_routing_key": "rk"}


def test_which_directories_are_trusted(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    assert untrusted_reason(str(mine)) is None
    os.chmod(mine, 0o770)
    assert "other users can write to it" in str(untrusted_reason(str(mine)))
    os.chmod(mine, 0o1777)  # sticky, as /tmp: a place to keep one's own directory in, never to act on
    assert "other users can write to it" in str(untrusted_reason(str(mine)))
    inner = mine / "inner"
    inner.mkdir(mode=0o700)
    assert untrusted_reason(str(inner)) is None  # below a sticky directory, one's own is safe
    os.chmod(mine, 0o777)  # not sticky: anyone may rename `inner` away and put theirs in its place
    assert "above it" in str(untrusted_reason(str(inner)))
    link = tmp_path / "link"
    link.symlink_to(inner)
    assert untrusted_reason(str(link)) == "it is a symbolic link"
    with pytest.raises(NoPermission, match=r"^refusing the share directory .*: it is a symbolic link"):
        check_trusted_dir(str(link), "share directory")


def test_private_files_and_directories(tmp_path):
    made = private_dir(str(tmp_path / "a" / "b"), "state directory")
    assert os.stat(made).st_mode & 0o777 == 0o700
    target = tmp_path / "target"
    target.write_text("root's")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(RefusedLink):
        open_nofollow(str(link))
    os.close(create_private(str(link)))  # the link is replaced by a new file, the target untouched
    assert not link.is_symlink() and link.stat().st_mode & 0o777 == 0o600
    assert target.read_text() == "root's"


def test_ones_own_directory_is_made_in_a_sticky_one_and_anothers_is_refused(tmp_path):
    # an unprivileged user's state directory is /tmp/oomlab-UID/oomlab: made level by level under the
    # sticky /tmp, each level checked ours; one another user made there first is refused, never used
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    made = private_dir(str(sticky / "oomlab-0" / "oomlab"), "state directory")
    assert os.stat(made).st_mode & 0o777 == 0o700
    planted = sticky / "oomlab-65534"
    planted.mkdir(mode=0o700)
    os.chown(planted, 65534, 65534)
    with pytest.raises(NoPermission, match=r"^refusing the state directory .*belongs to uid 65534"):
        private_dir(str(planted / "oomlab"), "state directory")
    assert not (planted / "oomlab").exists()
    os.chmod(sticky, 0o777)  # not sticky: anyone could rename a level away between two steps
    with pytest.raises(NoPermission, match="other users can write to it"):
        private_dir(str(sticky / "oomlab-1" / "oomlab"), "state directory")


def test_a_package_file_removed_while_it_is_checked_is_passed_over_and_a_foreign_one_refused(tmp_path, monkeypatch):
    """A deploy may remove a file between the folder's listing and its lstat: that is no reason to
    refuse, and never a traceback; another user's file in the package still is."""
    package = tmp_path / "proj"
    package.mkdir()
    for name in ("__init__.py", "tasks.py", "gone.py"):
        (package / name).write_text("")
    real_lstat = os.lstat
    removed = []

    def lstat_after_a_deploy(path, *args, **kwargs):
        if str(path).endswith("gone.py") and not removed:
            os.unlink(path)  # really gone: the kernel's own ENOENT follows
            removed.append(path)
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", lstat_after_a_deploy)
    assert untrusted_import_reason(str(tmp_path), app_top_name("proj.celery:app")) is None
    assert removed, "the removal was met"
    check_importable(str(tmp_path), "proj:app", "the app proj:app")  # no refusal, no traceback
    monkeypatch.undo()
    os.chown(package / "tasks.py", 4242, 4242)
    with pytest.raises(NoPermission, match=r"proj/tasks\.py: it belongs to uid 4242"):
        check_importable(str(tmp_path), "proj.celery:app", "the app proj.celery:app")
