"""A second local account for the attacks: made per test with `useradd`, removed with `userdel`.
oomlab runs as root; the other user plants files where it can write, and the tests check that root
never imports, follows or acts on them."""

from __future__ import annotations

import os
import pathlib
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from oomlab.worker import proc
from oomlab.worker.broker import redis_server_binary

from tests.conftest import TIME_SCALE


@dataclass(frozen=True)
class LocalUser:
    name: str
    uid: int
    gid: int

    def run(self, *argv: str) -> None:
        """A command run as this user (what they can do with their own rights)."""
        subprocess.run(["runuser", "-u", self.name, "--", *argv], check=True, capture_output=True, timeout=30)

    def write(self, path: str, text: str) -> None:
        subprocess.run(
            ["runuser", "-u", self.name, "--", "sh", "-c", 'cat > "$1"', "sh", path],
            input=text.encode(),
            check=True,
            capture_output=True,
            timeout=30,
        )

    def symlink(self, target: str, link: str) -> None:
        self.run("ln", "-s", target, link)


def _make_user() -> LocalUser:
    name = f"oomt{secrets.token_hex(4)}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True, timeout=30)
    entry = pwd.getpwnam(name)
    return LocalUser(name, entry.pw_uid, entry.pw_gid)


def _remove_user(user: LocalUser) -> None:
    subprocess.run(["userdel", user.name], capture_output=True, timeout=30)


def _temporary_user():
    user = _make_user()
    try:
        yield user
    finally:
        _remove_user(user)


@pytest.fixture
def other_user():
    """The attacker: plants files where they can write."""
    yield from _temporary_user()


@pytest.fixture
def victim_user():
    """A second non-root user, for what happens to a user other than root."""
    yield from _temporary_user()


@pytest.fixture
def spawn_as():
    """Start a process as a given user (root by default), killed at teardown: `spawn_as(argv, uid, gid,
    executable=...)`; argv[0] is what its command line shows."""
    started: list[subprocess.Popen] = []

    def start(argv: list[str], uid: int = 0, gid: int = 0, executable: str | None = None) -> subprocess.Popen:
        process = subprocess.Popen(argv, executable=executable, user=uid, group=gid)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


@pytest.fixture
def public_tmp():
    """A root-owned directory the other user can reach (pytest's tmp_path sits under a 0700 one)."""
    path = tempfile.mkdtemp(prefix="oomlab-security-")
    os.chmod(path, 0o755)
    try:
        yield pathlib.Path(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def own_redis(socket_path: str, *args: str) -> Iterator[None]:
    """A redis-server of the test's own on a unix socket (with `args`, as --requirepass), until the block ends."""
    server = subprocess.Popen(
        [redis_server_binary(), "--port", "0", "--unixsocket", socket_path, "--save", "", "--appendonly", "no", *args],
        stdout=subprocess.DEVNULL,
    )
    try:
        assert proc.wait_until(lambda: os.path.exists(socket_path), 10 * TIME_SCALE), "redis did not start"
        yield
    finally:
        server.kill()
        server.wait()


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of the test's own on a unix socket: its URL."""
    socket_path = str(tmp_path / "redis.sock")
    with own_redis(socket_path):
        yield f"redis+socket://{socket_path}"


def secret_file(path: str, text: str = "root's own secret\n") -> str:
    """A root-owned 0600 file: what a planted symlink would aim at."""
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
    return text
