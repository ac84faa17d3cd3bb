"""The hooks a workflow's runs get besides their own, chosen by the front end that started it: the
CLI wires in the report package's (timeline.png, report.html) with --profile's reader
(oomlab.cli.wiring). Compare, recommend and the lab ask `standard_hooks()` for each run they start,
so they return data and never import the report package. Nothing wired (oomlab used as a library):
--profile's reader only, the record whole and no pictures."""

from __future__ import annotations

from collections.abc import Callable

from oomlab.run.hooks import RunHook
from oomlab.run.profile_reader import ProfileReader

HookFactory = Callable[[], list[RunHook]]
_wired: HookFactory | None = None


def wire_standard_hooks(factory: HookFactory | None) -> None:
    """What every workflow run gets from now on in this process (None: back to the reader alone)."""
    global _wired
    _wired = factory


def standard_hooks() -> list[RunHook]:
    """Fresh hooks for one run (a hook may hold state for its run)."""
    return _wired() if _wired is not None else [ProfileReader()]
