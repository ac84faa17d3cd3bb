"""Which tasks --profile chose: read by the probe in the pool child from the environment the worker
was started with, and by the layers above to check and label. Standard library only."""

from __future__ import annotations

NAMES_ENV = "OOMLAB_PROFILE"  # "all" or comma-separated task names (full, or the last dotted part)
DIR_ENV = "OOMLAB_PROFILE_DIR"  # where the pool child writes one capture per task execution


def parse_names(text: str | None) -> tuple[str, ...]:
    """`--profile a,b` as a tuple; empty when profiling is off."""
    return tuple(name.strip() for name in (text or "").split(",") if name.strip())


def chosen(names: tuple[str, ...], task_name: str | None) -> bool:
    """Whether a task is profiled: "all", its full name, or the last part of a dotted name."""
    if not names or not task_name:
        return False
    return "all" in names or task_name in names or task_name.rsplit(".", 1)[-1] in names
