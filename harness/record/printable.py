"""What oomlab prints of text another user could have written: a dead letter's task id and name in
Redis, a task name or message in a run record, an error quoting one. A control character there
(ESC, BEL, a carriage return, a bidirectional override) could move the cursor, retitle or clear
the terminal, or hide a line; so each is shown escaped (`\\x1b`), never sent to the terminal."""

from __future__ import annotations

import re

_CONTROL = "\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069"
_IN_TEXT = re.compile(f"[{_CONTROL}]")  # text of lines: tabs and newlines stay
_IN_FIELD = re.compile(f"[\t\n{_CONTROL}]")  # one field of one line: a newline would forge a line


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control character but tab and newline escaped."""
    return _IN_TEXT.sub(_escaped, text)


def printable_field(text: object) -> str:
    """One value on one line (an id, a name): every control character escaped, tabs and newlines too."""
    return _IN_FIELD.sub(_escaped, str(text))
