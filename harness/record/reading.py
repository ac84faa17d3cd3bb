"""Files oomlab reads that someone else may have made: a record, baseline or export a user names, a
share's worker.json and worker.log. A FIFO or a device there would block a run (or read for ever),
a huge file would cost its size in memory, and deeply nested JSON would blow the parser's stack; so
these are opened without blocking, must be regular files, are read up to a cap, and JSON is refused
past a nesting depth no oomlab file comes near."""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterator
from typing import IO, Any

from oomlab.errors import BadInput
from oomlab.trust import RefusedLink

MAX_RECORD_BYTES = 256 * 1024 * 1024  # run.json, lab.json, a baseline: far above any real one
MAX_SHARE_BYTES = 1024 * 1024  # worker.json: a few hundred bytes
MAX_JSON_DEPTH = 64  # oomlab's records nest about ten levels
MAX_LINE_BYTES = 1024 * 1024  # one line of tasks.jsonl, probe.jsonl or a sampler CSV: a few KiB at most
MAX_STREAM_BYTES = 4 * 1024 * 1024 * 1024  # all of one such file: far above a day-long load run's


class NotRegular(OSError):
    """The path is a FIFO, a device, a socket or a directory: never read."""


def open_regular(path: str, follow: bool = True) -> int:
    """An fd of `path` opened for reading without blocking (a FIFO opens at once), checked to be a
    regular file (NotRegular otherwise; RefusedLink for a symlink when `follow` is False)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise RefusedLink(errno.ELOOP, "a symbolic link, not followed", path) from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        raise NotRegular(errno.EINVAL, f"it is {kind}", path)
    return fd


def open_file(path: str, text: bool = False, **kwargs: Any) -> IO[Any]:
    """A regular file as a file object (open()'s, binary or text), or BadInput (one sentence) for a
    FIFO, device or directory; FileNotFoundError passes through for callers that read it as empty."""
    try:
        fd = open_regular(path)
    except NotRegular as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}; oomlab reads only regular files") from None
    return os.fdopen(fd, "r" if text else "rb", **kwargs)


class BoundedLines:
    """The lines of a file opened in binary (open_file), each read with readline(max_line): a longer
    line (a sparse file's run of NULs is one) is skipped to its end a chunk at a time and handed on as
    None, so it costs `max_line` bytes of memory, not its length; reading stops after `max_total`
    bytes (`capped` says so), so a file cannot make a reader run for ever either."""

    def __init__(self, handle: IO[bytes], max_line: int = MAX_LINE_BYTES, max_total: int = MAX_STREAM_BYTES):
        self.handle, self.max_line, self.max_total = handle, max_line, max_total
        self.read = 0
        self.capped = False

    def __iter__(self) -> Iterator[bytes | None]:
        while line := self._chunk():
            if line.endswith(b"\n") or len(line) < self.max_line:
                yield line
                continue
            while (rest := self._chunk()) and not rest.endswith(b"\n"):
                pass
            yield None

    def text(self) -> Iterator[str]:
        """The lines that fit, decoded (what a csv.reader takes)."""
        return (line.decode("utf-8", "replace") for line in self if line is not None)

    def _chunk(self) -> bytes:
        if self.read >= self.max_total:
            self.capped = True
            return b""
        chunk = self.handle.readline(min(self.max_line, self.max_total - self.read))
        self.read += len(chunk)
        return chunk


def read_capped(fd: int, limit: int, offset: int = 0) -> bytes:
    """Up to `limit` bytes from `offset` (the caller tells a longer file by getting limit + 1)."""
    chunks, left = [], limit
    while left > 0:
        chunk = os.pread(fd, min(left, 1 << 20), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_regular(path: str, limit: int, follow: bool = True) -> bytes:
    """A regular file's bytes; OSError (NotRegular for a FIFO or device) or ValueError past `limit`."""
    fd = open_regular(path, follow)
    try:
        data = read_capped(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"it is larger than {limit // (1024 * 1024)} MiB")
    return data


MAX_JSON_INT = 2**63  # oomlab writes no integer this large: bytes, counts and pids all fit in 64 bits


def _number_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")  # oomlab never writes NaN or Infinity


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text) > 20 or abs(value := int(text)) >= MAX_JSON_INT:
        raise ValueError(f"the integer {text[:20]}{'...' if len(text) > 20 else ''} is out of range")
    return value


def parse_json(data: bytes | str) -> Any:
    """JSON with a nesting depth oomlab files have and numbers it writes: finite, integers within 64
    bits (ValueError otherwise, never RecursionError or an overflow further on)."""
    try:
        value = json.loads(data, parse_constant=_number_constant, parse_float=_finite_float, parse_int=_bounded_int)
    except RecursionError:
        raise ValueError(f"it nests deeper than {MAX_JSON_DEPTH} levels") from None
    if too_deep(value, MAX_JSON_DEPTH):
        raise ValueError(f"it nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def too_deep(value: Any, limit: int) -> bool:
    """Whether `value` nests more than `limit` containers deep (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def read_json(path: str, what: str, limit: int = MAX_RECORD_BYTES, follow: bool = True) -> Any:
    """A JSON file a user named, or BadInput (one sentence) saying why it cannot be read (a symlink
    among them when not `follow`)."""
    try:
        return parse_json(read_regular(path, limit, follow))
    except FileNotFoundError:
        raise BadInput(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise BadInput(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"{what} {path} is not readable JSON ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
