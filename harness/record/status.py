"""A run record's final status, written even when the results disk is full.

run.json is normally replaced atomically (a new copy, then a rename), which needs room for a second
copy. When there is none, the record is rewritten in place, compact, over the bytes it already
holds: the status and message are what matter, and a record left saying `running` would lie. A
checkpoint's record is compact too, so it ends in STATUS_ROOM spaces for that rewrite.
"""

from __future__ import annotations

import json
import os
from typing import Any

from oomlab.trust import results_umask, write_private_atomic

STATUS_ROOM = 2048  # trailing spaces a compact run.json keeps for its final status and message


def settle_status(path: str, status: str, message: str | None) -> bool:
    """Set run.json's status and message: atomically when the disk has room, in place otherwise.
    Returns whether the record now says so."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:
        return False
    with os.fdopen(fd, "r+b") as handle:
        try:
            record = json.loads(handle.read())
        except (ValueError, UnicodeDecodeError):
            return False
        if not isinstance(record, dict):
            return False
        record["status"], record["message"] = status, message
        if _replace(path, record):
            return True
        remove_quietly(f"{path}.tmp")  # a half-written copy takes the room the rewrite needs
        size = handle.seek(0, os.SEEK_END)
        compact = json.dumps(record, separators=(",", ":")).encode()
        if len(compact) > size and message:  # the status first: the message cut short and said so, or none
            record["message"] = _cut_to_fit(message, len(compact) - size)
            compact = json.dumps(record, separators=(",", ":")).encode()
        if len(compact) > size:
            return False  # would need room the disk does not have
        handle.seek(0)
        handle.write(compact.ljust(size))  # JSON allows trailing spaces: no block is freed or added
        handle.flush()
    return True


CUT = "... (cut: the disk is full)"


def _cut_to_fit(message: str, over: int) -> str | None:
    """The longest start of `message` that, with CUT after it, makes the record `over` bytes shorter,
    counted as JSON encodes each character (a non-ASCII one takes six bytes); None when none does."""
    room = len(json.dumps(message)) - over - len(json.dumps(CUT))  # encoded bytes left for the kept start
    used = kept = 0
    for char in message:
        used += len(json.dumps(char)) - 2
        if used > room:
            break
        kept += 1
    return f"{message[:kept]}{CUT}" if kept else None


def _replace(path: str, record: dict[str, Any]) -> bool:
    try:
        write_private_atomic(path, json.dumps(record, indent=1), mode=0o666 & ~results_umask())
        return True
    except OSError:
        return False


def remove_quietly(path: str) -> None:
    try:
        if os.path.isfile(path) and not os.path.islink(path):
            os.unlink(path)
    except OSError:
        pass
