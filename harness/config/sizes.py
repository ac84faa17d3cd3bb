"""Memory sizes as users write them (256MiB, 1.5G, 512M) and back again."""

from __future__ import annotations

import re
from fractions import Fraction

from oomlab.errors import BadInput

_UNITS = {
    "": 1,  # refused with its own sentence: a size needs a unit
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "ki": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mi": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gi": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "ti": 1024**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")
MIB = 1024**2
MAX_SIZE = 2**63 - 1  # the kernel's limit files hold a signed 64-bit byte count


def parse_size(text: str) -> int:
    """Bytes for a size string, one rule for every command, case-insensitive: K/M/G, Ki/Mi/Gi and
    KiB/MiB/GiB are binary (Docker's 256m, Kubernetes' 256Mi), KB/MB/GB decimal (256MB and 256mb are
    256,000,000 bytes). Kubernetes' own bare 256M is decimal; here it is Docker's, binary. A number with
    no unit is refused: `256` meant as MiB would be a 256-byte limit that fails only at start-up."""
    match = _SIZE.match(str(text))
    unit = match.group(2).lower() if match else None
    if not match or unit not in _UNITS:
        raise BadInput(f"'{_shown(text)}' is not a memory size; write it like 256MiB, 512M, 1.5GiB or 268435456B")
    if not unit:
        number = match.group(1)
        raise BadInput(f"{_shown(number)} has no unit: write {_shown(number)}MiB (or {_shown(number)}B for bytes)")
    value = int(Fraction(match.group(1)) * _UNITS[unit])  # exact: no float rounding or overflow
    if value <= 0:
        raise BadInput(f"memory size '{_shown(text)}' must be greater than zero")
    if value > MAX_SIZE:
        raise BadInput(f"memory size '{_shown(text)}' is larger than any memory limit (at most 8 EiB)")
    return value


def written_decimal(text: str | None) -> bool:
    """Whether a size was written in a decimal unit (KB/MB/GB/TB): 256MB is 244.1 MiB, which a
    report says beside it, since most who write MB mean MiB."""
    match = _SIZE.match(str(text or ""))
    return match is not None and _UNITS.get(match.group(2).lower(), 1024) % 1000 == 0


def _shown(text: object) -> str:
    """What was written, on one line (escaped as repr() does, like every value config's messages
    quote) and at most 40 characters."""
    text = repr(str(text))[1:-1]
    return text if len(text) <= 40 else f"{text[:37]}..."


def format_size(num_bytes: float | None) -> str:
    """Human figure with one decimal in the largest binary unit that keeps it >= 1."""
    if num_bytes is None:
        return "-"
    sign = "-" if num_bytes < 0 else ""
    value = abs(float(num_bytes))
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{sign}{value:.0f} {unit}" if unit == "B" else f"{sign}{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
