"""Reading the fleet's stream, and noticing when it is no longer there: deleted, or its key replaced by
another type (WRONGTYPE) by anyone who can write to that Redis. Either ends the run with what it has,
said in one sentence, never a traceback."""

from __future__ import annotations

from typing import Any

from oomlab.record.printable import printable_field


def read_stream(client: Any, stream: str, last_id: str, block_ms: int) -> tuple[list[Any], str | None]:
    """(the entries after `last_id`, None), or ([], why the stream cannot be read any more)."""
    try:
        entries = client.xread({stream: last_id}, count=1000, block=block_ms)
        if entries:
            return list(entries), None
        kind = client.type(stream)  # XREAD blocks on a key that is gone: look
    except Exception as exc:
        return [], f"the event stream {printable_field(stream)} could not be read ({type(exc).__name__}): " + (
            "its key is not a stream any more; the run ends with what it has"
            if "WRONGTYPE" in str(exc)
            else "the run ends with what it has"
        )
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    if kind == "none":
        return [], f"the event stream {printable_field(stream)} was deleted mid-run; the run ends with what it has"
    if kind != "stream":
        return [], (
            f"the event stream {printable_field(stream)} was replaced by a {printable_field(kind)} mid-run; the run "
            f"ends with what it has"
        )
    return [], None
