"""The largest counts and spans a run takes. A count past these is a typo or an attack, never a run
this machine could do: `--tasks 99999999999999999999` would build its plan for ever, a concurrency
of millions would fork until the machine stops, a stage of eleven million years never ends. Each is
refused with one sentence (BadInput, exit 2) before anything starts."""

from __future__ import annotations

from oomlab.errors import BadInput

MAX_TASKS = 10_000_000  # tasks in one run: a plan, a closed loop or an open-loop schedule
MAX_CONCURRENCY = 1024  # pool processes or threads of one worker
MAX_IN_FLIGHT = 100_000
MAX_SECONDS = 30 * 24 * 3600.0  # any duration or timeout: thirty days
MAX_SAMPLE_HZ = 10_000.0


def count(flag: str, value: int, high: int, low: int = 1) -> int:
    """`value` when low <= value <= high; otherwise one sentence naming the flag and the bound."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{flag} must be a whole number, not {value!r}")
    if value < low:
        raise BadInput(f"{flag} must be at least {low}, not {value}")
    if value > high:
        raise BadInput(f"{flag} must be at most {high:,}, not {_shown(value)}")
    return value


def span(flag: str, seconds: float) -> float:
    """A duration or timeout no longer than MAX_SECONDS."""
    if seconds > MAX_SECONDS:
        raise BadInput(f"{flag} must be at most 30 days, not {seconds:g} s")
    return seconds


def _shown(value: int) -> str:
    text = str(value)
    return text if len(text) <= 30 else f"{text[:12]}… ({len(text)} digits)"
