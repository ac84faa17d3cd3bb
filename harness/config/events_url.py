"""`redis://[:PASSWORD@]HOST:PORT/DB/STREAM`: where `oomlab agent --events` publishes a worker's events
and `oomlab run --fleet` reads a fleet's. Parsed once, for both sides; the password never leaves this
object except to the Redis client (`client_url`), and `shown` is what logs and records carry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from oomlab.config.argv_secret import refuse_argv_secret
from oomlab.errors import BadInput

_STREAM = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")


@dataclass(frozen=True)
class EventsUrl:
    client_url: str  # redis://[:pw@]host:port/db, for redis.Redis.from_url (never printed)
    stream: str
    host: str
    port: int
    db: int

    @property
    def shown(self) -> str:
        """The URL as logs, errors and records show it: no user, no password."""
        return f"redis://{self.host}:{self.port}/{self.db}/{self.stream}"


def parse_events_url(text: str, flag: str = "--events", from_argv: bool = True) -> EventsUrl:
    """BadInput (one sentence, with the password left out) for anything but redis[s]://HOST[:PORT]/DB/STREAM,
    and for a password on the command line (`from_argv`), which every local user can read."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port or 6379
    except ValueError:
        raise BadInput(f"{flag}: not a redis://HOST:PORT/DB/STREAM URL (its port or host does not parse)") from None
    host = parts.hostname or ""
    shown = f"{parts.scheme}://{host}:{port}{parts.path}"
    if parts.scheme not in ("redis", "rediss") or not host:
        raise BadInput(f"{flag} {shown}: expected redis://HOST:PORT/DB/STREAM (e.g. redis://10.0.0.1:6379/0/run-1)")
    db, _, stream = parts.path.lstrip("/").partition("/")
    if not db.isdigit() or not _STREAM.match(stream):
        raise BadInput(
            f"{flag} {shown}: the path must be /DB/STREAM, a database number and a stream name of letters, "
            f"digits and . _ : - (e.g. /0/run-1)"
        )
    if from_argv:
        refuse_argv_secret(flag, text, f"{flag}-from-env VAR")
    auth = ""
    if parts.password is not None or parts.username:
        auth = f"{parts.username or ''}:{parts.password or ''}@"
    bracketed = f"[{host}]" if ":" in host else host
    return EventsUrl(f"{parts.scheme}://{auth}{bracketed}:{port}/{int(db)}", stream, host, port, int(db))
