"""The one place secrets are masked before anything is stored or printed: run records, leases, log
copies, reports, terminal output and error messages. A URL keeps its scheme, user and host (what a
reader needs to know which broker it was) and loses its password; a setting or parameter whose name
says it holds a secret (password, token, secret, key, ...) loses its value."""

from __future__ import annotations

import os
import re
import stat
import tempfile
from typing import Any

from oomlab.probe.url_mask import MASK as MASK
from oomlab.probe.url_mask import safe_url as safe_url  # the URL rule lives in the probe, which writes messages too
from oomlab.record.reading import open_regular

_SECRET_NAME = re.compile(
    r"(?:^|[_\-.\s])(?:password|passwd|pwd|pass|secret|secrets|token|key|apikey|credentials?|auth|private)(?:$|[_\-.\s])",
    re.IGNORECASE,
)
# words that say "secret" wherever they stand in a name (dbpassword, mytoken, apikey)
_SECRET_PART = re.compile(r"password|passwd|passphrase|secret|token|apikey|credential|privatekey", re.IGNORECASE)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def without_password(text: str, url: str) -> str:
    """`text` (a library's message about `url`) with `url`'s password masked, and each piece of it: a
    parser that misreads a password holding `/`, `:` or a space quotes a piece of it as a port or a
    path ("Port could not be cast to integer value as 'S3cret'"), which no URL pattern can find."""
    rest = url.partition("://")[2]
    userinfo = rest.rpartition("@")[0] if "@" in rest else ""
    password = userinfo.partition(":")[2]
    if password and password != MASK:
        quoted = {f"'{q}'" for q in re.findall(r"'([^']+)'", text) if q in password}  # 'S3cr:et', 'ab'
        pieces = {password, *quoted, *(p for p in re.split(r"[/:@?#\s]+", password) if len(p) >= 3)}
        for piece in sorted(pieces, key=len, reverse=True):
            text = text.replace(piece, f"'{MASK}'" if piece in quoted else MASK)
    return safe_url(text)


def secret_name(name: str) -> bool:
    """A setting or parameter name that says it holds a secret, in any case style (`database_password`,
    `dbPassword`, `accessKey`, `X-Auth-Token`, `api_token`); `tasks`, `keyboard`, `monkey_count` or a
    routing key do not."""
    words = _CAMEL.sub("_", name)
    if words.lower().endswith("routing_key"):
        return False
    return bool(_SECRET_NAME.search(words) or _SECRET_PART.search(name))


def mask_urls(value: Any) -> Any:
    """A copy of `value` (JSON-like data) with the password of every URL in every string masked: safe
    on any data (every JSON file oomlab writes goes through it)."""
    kind = type(value)
    if kind is float or kind is int or kind is bool or value is None:  # most of a record: its numbers
        return value
    if isinstance(value, str):
        return safe_url(value)
    if isinstance(value, dict):
        return {key: mask_urls(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_urls(item) for item in value)
    return value


def mask_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings or parameters (name -> value) with the values of secret-named ones replaced whole,
    nested ones too (`broker_transport_options: {password: ...}`). Only for settings: elsewhere a key
    can be data, such as a task named `refresh_token`."""
    return {
        key: MASK
        if secret_name(key) and _has_content(item)
        else mask_settings(item)
        if isinstance(item, dict)
        else mask_urls(item)
        for key, item in settings.items()
    }


def _has_content(value: Any) -> bool:
    return value not in (None, "") and not isinstance(value, bool)


def mask_file(path: str, line_bytes: int = 1 << 20) -> None:
    """A log's passwords masked in place, a line at a time (the worker writes its log itself, and
    Celery's own lines quote exception messages, URLs included): the masked copy replaces the file
    through a new private temporary beside it. A missing file is left missing."""
    try:
        source = os.fdopen(open_regular(path, follow=False), "rb")
    except FileNotFoundError:
        return
    with source:
        mode = stat.S_IMODE(os.fstat(source.fileno()).st_mode)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "wb") as target:
                os.fchmod(target.fileno(), mode)
                while line := source.readline(line_bytes):
                    target.write(safe_url(line.decode(errors="replace")).encode() if b"://" in line else line)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
