"""Whether a service's port answers now: a TCP connect, no client library, so a broker or backend
that is down is said in one sentence before anything waits on it (a client library would retry for a
minute, then raise a message of several lines)."""

from __future__ import annotations

import socket
import urllib.parse


def unreachable(url: object) -> str | None:
    """Why a Redis or AMQP URL's port does not answer now (a TCP connect, no client library), or None."""
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "amqp://", "amqps://")):
        return None
    try:
        parts = urllib.parse.urlsplit(url)
        default = 5672 if parts.scheme.startswith("amqp") else 6379
        address = (parts.hostname or "127.0.0.1", parts.port or default)
    except ValueError:
        return None
    try:
        socket.create_connection(address, timeout=3).close()
    except OSError as exc:
        return type(exc).__name__
    return None
