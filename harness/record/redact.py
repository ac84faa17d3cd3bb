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

from oomlab.record.reading import open_regular

MASK = "***"

# scheme://user:password@ (the password up to the last @ before a space, so an unencoded @ in it is
# masked too); query arguments such as ?password=... as well
# (the look-behind keeps the search linear in a long run of letters: a scheme starts only after one)
_URL_PASSWORD = re.compile(r"(?<![A-Za-z0-9+.\-])(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*):[^\s/]*@")
_QUERY_SECRET = re.compile(r"(?P<head>[?&;](?:password|passwd|pwd|secret|token|api_?key)=)[^&;\s'\"]+", re.IGNORECASE)
# a URL whose password holds `/` or a space (the form above stops at them): taken to the last @ of
# its stretch of text, unless what follows the colon is a port (digits, then a path or a word, no @)
_URL_LOOSE = re.compile(
    r"(?<![A-Za-z0-9+.\-])(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*):(?!\d+(?:[/\s]|$)[^@\s]*(?:\s|$))"
    r"(?P<password>[^\n\r\"'<>,;@]{0,256})@"
)
_SECRET_NAME = re.compile(
    r"(?:^|[_\-.\s])(?:password|passwd|pwd|pass|secret|secrets|token|key|apikey|credentials?|auth|private)(?:$|[_\-.\s])",
    re.IGNORECASE,
)
# words that say "secret" wherever they stand in a name (dbpassword, mytoken, apikey)
_SECRET_PART = re.compile(r"password|passwd|passphrase|secret|token|apikey|credential|privatekey", re.IGNORECASE)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def safe_url(text: str) -> str:
    """`text` (a URL, or a message that holds some) with every URL's password replaced by ***."""
    if "://" not in text:  # most strings (and every large one a task carries) hold no URL: a fast out
        return text
    text = _URL_PASSWORD.sub(rf"\g<head>:{MASK}@", text)
    text = _URL_LOOSE.sub(_masked_loose, text)
    return _QUERY_SECRET.sub(rf"\g<head>{MASK}", text) if "=" in text else text


def _masked_loose(match: re.Match[str]) -> str:
    if match["password"] == MASK:  # masked already by the strict form
        return str(match.group(0))
    return f"{match['head']}:{MASK}@"


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
