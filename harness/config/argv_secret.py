"""What a URL given on a command line may not hold: every local user can read a command line
(/proc/PID/cmdline, `ps`) for as long as the process runs. The one rule for every flag that refuses
a secret there (`--events`, `--fleet`, `--alert-webhook`, `oomlab replay --redis/--broker`); each
such flag has a form that reads the URL from the environment or a file instead."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

from oomlab.errors import BadInput

# a query argument's name, cut at _ - . into words: any of these words makes its value a secret
_SECRET_WORDS = frozenset(
    [
        "password",
        "passwd",
        "pwd",
        "pass",
        "secret",
        "token",
        "key",
        "apikey",
        "sig",
        "signature",
        "auth",
        "credential",
        "credentials",
        "code",  # Azure Functions' ?code=
        "jwt",
        "bearer",
        "session",
        "hmac",
    ]
)
_WORD = re.compile(r"[_\-.]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")  # accessToken -> access Token


def _words(name: str) -> set[str]:
    return {word.lower() for part in _WORD.split(name) for word in _CAMEL.split(part) if word}


def argv_secret(url: str) -> str | None:
    """What secret `url` holds ("a password", "a token in its query (`token=`)"), or None."""
    try:
        parts = urlsplit(url.strip())
        password = parts.password
    except ValueError:
        return None  # not a URL the flag's own parser takes: it says so
    if password:
        return "a password"
    if parts.username:  # a bare user before the host is as often a token (https://TOKEN@host/)
        return "a user name or token before its host"
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if value and _SECRET_WORDS.intersection(_words(name)):
            return f"a token in its query (`{name}=`)"
    return None


def shown_url(url: str) -> str:
    """`url` as a refusal shows it: scheme, host, port and path; no user, password or query."""
    try:
        parts = urlsplit(url.strip())
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the URL"
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def refuse_argv_secret(flag: str, url: str, instead: str) -> None:
    """BadInput (exit 2) when `url`, given as `flag` on the command line, holds a secret; `instead`
    names the safe flag(s) to give it by."""
    if (secret := argv_secret(url)) is not None:
        raise BadInput(
            f"{flag} {shown_url(url)}: the URL holds {secret}, and every user on this machine can read a "
            f"command line; give it by {instead} instead"
        )
