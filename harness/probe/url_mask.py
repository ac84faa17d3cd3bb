"""A URL's password masked in a string: the one rule, kept in the probe because the probe writes a
task's exception message (which may quote a database URL) from inside the worker, where nothing else
of oomlab is imported; oomlab.record.redact masks everything else with it."""

from __future__ import annotations

import re

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
