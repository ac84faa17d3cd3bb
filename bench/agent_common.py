"""What both of `python -m bench agent`'s detection parts use (and the agent's tests): the worker's
command, the unprivileged container the agent runs in and the alert webhook's receiver (on the host's 127.0.0.1, which a host-network container reaches too)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from oomlab.worker.docker.engine import client


def worker(queue: str, python: list[str]) -> list[str]:
    """`celery -A bench.agent_app worker`, prefork × 2, run by `python` (this interpreter, or the image's)."""
    return [*python, "-m", "celery", "-A", "bench.agent_app", "worker", "-P", "prefork", "-c", "2",
            "-Q", queue, "-n", f"{queue}@localhost", "-l", "INFO", "--without-mingle", "--without-gossip"]  # fmt: skip


def unprivileged(limit: int) -> dict:
    """The container settings the agent is measured and tested under (docker-py's keywords): nobody, no
    capability, no new privileges, a hard memory limit with no swap beside it, the host's network."""
    return {"detach": True, "user": "65534:65534", "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
            "mem_limit": limit, "memswap_limit": limit, "network_mode": "host"}  # fmt: skip


def agent_container(
    image: str, command: list[str], name: str, limit: int, app: tuple[str, str], env: dict, agent_args: tuple = ()
):
    """A worker's container with `oomlab agent` (and `agent_args`) as its PID 1, `unprivileged` under
    `limit`; `app` is the user's app folder on the host and where it is mounted, read-only."""
    host, bind = app
    return client().containers.run(
        image,
        command,
        entrypoint=["oomlab", "agent", *agent_args, "--"],
        name=name,
        **unprivileged(limit),
        volumes={host: {"bind": bind, "mode": "ro"}},
        working_dir="/app",
        environment=env,
    )


def receiver() -> tuple[HTTPServer, list[dict]]:
    """A webhook on 127.0.0.1 keeping every alert, stamped with when this host received it
    (`host_received_monotonic`: an alert cannot have been seen later than that), the path it was
    posted to (`host_path`, query included) and its Authorization header (`host_authorization`)."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            alert = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(
                {
                    **alert,
                    "host_received_monotonic": time.monotonic(),
                    "host_path": self.path,
                    "host_authorization": self.headers.get("Authorization"),
                }
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received
