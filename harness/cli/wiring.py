"""What the CLI attaches to every run it starts, its workflows' included: the report package's
pictures (timeline.png, report.html) and --profile's reader, wired in once at start-up."""

from __future__ import annotations

from oomlab.report.hooks import standard_hooks
from oomlab.run.standard import wire_standard_hooks


def wire() -> None:
    wire_standard_hooks(standard_hooks)
