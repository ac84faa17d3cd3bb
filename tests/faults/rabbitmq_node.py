"""A private RabbitMQ node for one test: the machine's service on 5672 is shared by everyone, so a
test that stops its broker mid-run starts its own node (own name, ports, data, logs, config and
Erlang cookie, all under one temporary directory) and stops it fully afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass

import pytest

SCRIPTS = "/usr/lib/rabbitmq/bin"  # the scripts themselves: /usr/sbin's wrappers su to the service's user


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def require_rabbitmq_server() -> str:
    """The rabbitmq-server script; skipped where it is not installed, but a failure under CI=true."""
    server = os.path.join(SCRIPTS, "rabbitmq-server")
    if os.access(server, os.X_OK):
        return server
    if os.environ.get("CI"):
        pytest.fail(f"{server} is not installed (CI=true needs it for the broker restart test)")
    pytest.skip(f"{server} is not installed")


@dataclass
class RabbitNode:
    """One private node; `home` holds its cookie, data, logs and config, and is removed by `remove`."""

    home: str
    name: str
    port: int
    dist_port: int
    server: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": self.home,  # the Erlang cookie: made here by the server, read here by rabbitmqctl
            "RABBITMQ_CONF_ENV_FILE": os.path.join(self.home, "rabbitmq-env.conf"),  # not /etc's NODENAME
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": os.path.join(self.home, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.home, "log"),
            "RABBITMQ_CONFIG_FILE": os.path.join(self.home, "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.home, "enabled_plugins"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        argv = [os.path.join(SCRIPTS, "rabbitmqctl"), "-n", self.name, *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self.env())

    def start(self) -> None:
        log = open(os.path.join(self.home, "server.out"), "ab")
        self.server = subprocess.Popen(
            [require_rabbitmq_server()], stdout=log, stderr=subprocess.STDOUT, env=self.env(), cwd=self.home
        )
        log.close()
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise AssertionError(f"the private RabbitMQ node exited: {self.output()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"the private RabbitMQ node did not listen within 45 s: {self.output()[-2000:]}")

    def stop(self) -> None:
        """Stops the whole node (not only the app) and waits for its process to end."""
        if self.server is None or self.server.poll() is not None:
            return
        self.ctl("shutdown", timeout=60)
        try:
            self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()

    def names(self, what: str) -> list[str]:
        listed = self.ctl("-q", what, "name")
        assert listed.returncode == 0, listed.stderr
        return listed.stdout.split()

    def output(self) -> str:
        with open(os.path.join(self.home, "server.out"), errors="replace") as handle:
            return handle.read()

    def processes(self) -> list[int]:
        """Processes still naming this node (its beam, its heart, erl_child_setup)."""
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    cmdline = handle.read().decode(errors="replace")
            except OSError:
                continue
            if self.home in cmdline or self.name in cmdline:
                found.append(int(pid))
        return found

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


def new_node(home: str) -> RabbitNode:
    require_rabbitmq_server()
    os.makedirs(home, mode=0o700)
    node = RabbitNode(home=home, name=f"oomlabtest-{os.getpid()}@localhost", port=free_port(), dist_port=free_port())
    with open(os.path.join(home, "rabbitmq.conf"), "w") as handle:
        handle.write(f"listeners.tcp.local = 127.0.0.1:{node.port}\n")
    with open(os.path.join(home, "rabbitmq-env.conf"), "w") as handle:
        handle.write("")
    with open(os.path.join(home, "enabled_plugins"), "w") as handle:
        handle.write("[].\n")
    return node
