"""The one place secrets are masked before anything is stored or printed: run records, leases, log
copies, reports, terminal output and error messages. A URL keeps its scheme, user and host (what a
reader needs to know which broker it was) and loses its password; a setting or parameter whose name
says it holds a secret (password, token, secret, key, ...) loses its value."""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# scheme://user:password@ (the password up to the last @ before a space, so an unencoded @ in it is
# masked too); query arguments such as ?password=... as well
# (the look-behind keeps the search linear in a long run of letters: a scheme starts only after one)
_URL_PASSWORD = re.compile(r"(?<![A-Za-z0-9+.\-])(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*):[^\s/]*@")
_QUERY_SECRET = re.compile(r"(?P<head>[?&;](?:password|passwd|pwd|secret|token|api_?key)=)[^&;\s'\"]+", re.IGNORECASE)
_SECRET_NAME = re.compile(
    r"(?:^|[_\-.])(?:password|passwd|pwd|pass|secret|secrets|token|key|apikey|credentials?|auth|private)(?:$|[_\-.])",
    re.IGNORECASE,
)


def safe_url(text: str) -> str:
    """`text` (a URL, or a message that holds some) with every URL's password replaced by ***."""
    if "://" not in text:  # most strings (and every large one a task carries) hold no URL: a fast out
        return text
    text = _URL_PASSWORD.sub(rf"\g<head>:{MASK}@", text)
    return _QUERY_SECRET.sub(rf"\g<head>{MASK}", text) if "=" in text else text


def secret_name(name: str) -> bool:
    """A setting or parameter name that says it holds a secret (`database_password`, `api_token`,
    `security_key`); `tasks`, `keyboard`, `monkey_count` or a routing key do not."""
    return bool(_SECRET_NAME.search(name)) and not name.lower().endswith("routing_key")


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
