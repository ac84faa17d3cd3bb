"""A broker URL with a password is never on a command line: `--broker-from-env` and `--broker-file`
keep it out of oomlab's own, and oomlab hands it to the worker and the janitor by environment or
pipe, never argv. Every process's /proc/PID/cmdline is read while the run runs."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from tests.conftest import TIME_SCALE, oomlab_cmd
from tests.security.test_secrets import REDIS, redis_user  # noqa: F401 (a fixture)


def _command_lines() -> dict[int, bytes]:
    lines = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                lines[int(pid)] = handle.read()
        except OSError:
            continue
    return lines


def _url_file(path, url: str, mode: int = 0o600) -> str:
    path.write_text(f"{url}\n")
    os.chmod(path, mode)
    return str(path)


@pytest.mark.integration
@pytest.mark.services
@pytest.mark.parametrize("given_by", ["env", "file"])
def test_no_command_line_of_the_run_holds_the_password(tmp_path, redis_user, given_by):  # noqa: F811
    user, password = redis_user
    url = f"redis://{user}:{password}@{REDIS}/0"
    env = {**os.environ, "OOMLAB_TEST_BROKER": url}
    if given_by == "env":
        flags = ["--broker-from-env", "OOMLAB_TEST_BROKER", "--result-backend-from-env", "OOMLAB_TEST_BROKER"]
    else:
        secrets_dir = tmp_path / "secrets"
        secrets_dir.mkdir(mode=0o700)
        flags = ["--broker-file", _url_file(secrets_dir / "broker.url", url)]
    argv = oomlab_cmd("run", "alloc", "--tasks", "3", "--results", str(tmp_path / "results"), *flags)
    run = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen: set[int] = set()
    deadline = time.monotonic() + 150 * TIME_SCALE
    while run.poll() is None and time.monotonic() < deadline:
        for pid, cmdline in _command_lines().items():
            assert password.encode() not in cmdline, f"process {pid}'s command line holds the password: {cmdline!r}"
            if b"celery" in cmdline and b"oomlab.worker.app" in cmdline:
                seen.add(pid)
        time.sleep(0.02)
    stdout, stderr = run.communicate(timeout=30)
    assert run.returncode == 0, stderr
    assert seen, "the run's worker was never seen (the check read no worker's command line)"
    assert password not in stdout + stderr


@pytest.mark.parametrize(
    "flags, env, code, phrase",
    [
        (["--broker-from-env", "OOMLAB_NO_SUCH_VAR"], {}, 2, "the environment has no OOMLAB_NO_SUCH_VAR"),
        (["--result-backend-from-env", "OOMLAB_EMPTY"], {"OOMLAB_EMPTY": " "}, 2, "has no OOMLAB_EMPTY (or it is"),
        (["--broker-file", "{dir}/missing.url"], {}, 2, "missing.url does not exist"),
        (["--broker-file", "{dir}/readable.url"], {}, 3, "every user can read it (mode 644); chmod 600 it"),
        (["--broker-file", "{dir}/writable.url"], {}, 3, "other users can write to it (mode 622)"),
        (["--broker-file", "{dir}/empty.url"], {}, 2, "empty.url is empty"),
        (["--broker-file", "{dir}/fifo.url"], {}, 2, "it is a FIFO; oomlab reads only regular files"),
        (["--broker-file", "{dir}"], {}, 2, "it is a directory"),
        (["--broker-file", "{open}/broker.url"], {}, 3, "other users can write to"),
    ],
)
def test_a_url_given_by_env_or_file_is_checked_first(capsys, tmp_path, monkeypatch, flags, env, code, phrase):
    from oomlab.cli.main import main

    private, public = tmp_path / "private", tmp_path / "open"
    private.mkdir(mode=0o700)
    public.mkdir()
    os.chmod(public, 0o777)
    _url_file(private / "readable.url", "redis://u:pw@127.0.0.1:1/0", 0o644)
    _url_file(private / "writable.url", "redis://u:pw@127.0.0.1:1/0", 0o622)
    _url_file(private / "empty.url", "", 0o600)
    os.mkfifo(private / "fifo.url", 0o600)
    _url_file(public / "broker.url", "redis://u:pw@127.0.0.1:1/0", 0o600)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    argv = [flag.format(dir=private, open=public) for flag in flags]
    started = time.monotonic()
    assert main(["run", "alloc", "--results", str(tmp_path / "results"), *argv]) == code
    err = capsys.readouterr().err
    assert phrase in err, err
    assert "Traceback" not in err and "pw@" not in err
    assert time.monotonic() - started < 10, "a FIFO was waited on"
    assert not (tmp_path / "results").exists(), "nothing starts before the URL is read"


def test_a_url_file_of_another_user_is_refused(capsys, tmp_path, other_user):
    from oomlab.cli.main import main

    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o700)
    path = _url_file(secrets_dir / "broker.url", "redis://127.0.0.1:1/0")
    os.chown(path, other_user.uid, other_user.gid)
    assert main(["run", "alloc", "--broker-file", path, "--results", str(tmp_path / "results")]) == 3
    assert f"belongs to uid {other_user.uid}" in capsys.readouterr().err


def test_one_way_of_giving_the_broker(capsys):
    from oomlab.cli.main import main

    with pytest.raises(SystemExit) as stopped:
        main(["run", "alloc", "--broker", "redis://x/0", "--broker-from-env", "X"])
    assert stopped.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--broker", "--result-backend"])
@pytest.mark.parametrize(
    "url",
    [
        "redis://app:S3cret/PW@127.0.0.1:1/0",  # the client takes `S3cret` for the port and says so
        "amqp://app:S3cr:et/PW@127.0.0.1:1//",
        "redis://:pw/S3cret@127.0.0.1:1/0",
    ],
)
def test_a_broker_the_client_misreads_is_refused_without_a_piece_of_its_password(capsys, tmp_path, option, url):
    """A password holding `/` or `:` that was not percent-encoded: the client library's own message
    quotes a piece of it as a port, which no URL pattern can mask; none of it is printed."""
    from oomlab.cli.main import main

    assert main(["run", "alloc", option, url, "--results", str(tmp_path / "results")]) == 5
    err = capsys.readouterr().err
    assert "is unreachable" in err and err.count("\n") == 1, err
    password = url.partition("://")[2].rpartition("@")[0].partition(":")[2]
    assert not [piece for piece in re.split("[/:]", password) if piece in err], err
    assert not (tmp_path / "results").exists()
