"""One stream entry checked against the shape of an agent's event before the fold sees it.

Anyone who can write to the stream can put anything there (docs/security.md): an entry too large, not
JSON, nested without end, NaN, a lone surrogate in a name, a number where a name goes. Each such entry
is dropped here, with a short reason, and never reaches the record or the terminal. What fits is only
well formed: whether it is true is the fold's question (one hello per replica, one outcome per task)."""

from __future__ import annotations

import json
import math
from typing import Any

MAX_EVENT_BYTES = 64 * 1024  # an agent's event is a few hundred bytes; larger is dropped unparsed
MAX_DEPTH = 6  # an event is one object; a kill's message a few levels more
MAX_NAME = 256  # a replica, task or host name, a task id
MAX_WORD = 64  # an event's kind, a role, a cause, a state

_INT = "int"
_NUMBER = "number"
_BOOL = "bool"
_NAME = "name"
_WORD = "word"
_NAMES = "names"  # a list of names (a worker's queues)
MAX_NAMES = 256

# every field the fold reads, and its kind; None is allowed for all but ev (missing: None)
FIELDS: dict[str, str] = {
    "ev": _WORD,
    "replica": _NAME,
    "run_id": _NAME,
    "seq": _INT,
    "wall": _NUMBER,
    "id": _NAME,
    "name": _NAME,
    "task": _NAME,
    "hostname": _NAME,
    "pid": _INT,
    "agent_pid": _INT,
    "parent_pid": _INT,
    "code": _INT,
    "dropped": _INT,
    "exitcode": _INT,
    "limit_bytes": _INT,
    "group_bytes": _INT,
    "peak_bytes": _INT,
    "usage_bytes": _INT,
    "tree_peak": _INT,
    "peak_rss": _INT,
    "concurrency": _INT,
    "role": _WORD,
    "cause": _WORD,
    "state": _WORD,
    "program": _NAME,
    "detection_s": _NUMBER,
    "clock_offset_s": _NUMBER,
    "clock_round_trip_s": _NUMBER,
    "tree_peak_exact": _BOOL,
    "redelivered": _BOOL,
    "rejoined": _BOOL,
    "parent_id": _NAME,
    "root_id": _NAME,
    "group_id": _NAME,
    "group_usage_bytes": _INT,
    "group_peak_bytes": _INT,
    "queues": _NAMES,
}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number an agent sends")


def _fits(kind: str, value: Any) -> bool:
    if value is None:
        return True
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
    if kind == _NUMBER:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if kind == _NAMES:
        return isinstance(value, list) and len(value) <= MAX_NAMES and all(_fits(_NAME, v) for v in value)
    bound = MAX_NAME if kind == _NAME else MAX_WORD
    return isinstance(value, str) and len(value) <= bound


def _well_formed(value: Any) -> str | None:
    """Why `value` (a parsed entry) is not plain JSON of a bounded depth with text that encodes, else None."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"nested more than {MAX_DEPTH} deep"
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "text that is not Unicode (a lone surrogate)"
        elif isinstance(item, float) and not math.isfinite(item):
            return "a number that is not finite"
        elif isinstance(item, dict):
            stack.extend((k, depth + 1) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return None


def parse_event(raw: Any) -> tuple[dict[str, Any] | None, str]:
    """(the event, "") when `raw` (a stream entry's field) is an agent's event in shape, else (None, why)."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if not isinstance(raw, bytes):
        return None, "no event field"
    if len(raw) > MAX_EVENT_BYTES:
        return None, f"larger than {MAX_EVENT_BYTES // 1024} KiB"
    try:
        event = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        return None, "nested without end"
    except ValueError:  # not JSON, not UTF-8, NaN or Infinity
        return None, "not JSON"
    if not isinstance(event, dict):
        return None, "not a JSON object"
    why = _well_formed(event)
    if why:
        return None, why
    if not isinstance(event.get("ev"), str):
        return None, "no event kind"
    for key, kind in FIELDS.items():
        if not _fits(kind, event.get(key)):
            return None, f"a {key} that is not a {kind}"
    return event, ""
