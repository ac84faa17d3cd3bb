"""Which tasks --profile chose: read by the probe in the pool child from the environment the worker
was started with, and by the layers above to check and label. Standard library only."""

from __future__ import annotations

NAMES_ENV = "OOMLAB_PROFILE"  # "all" or comma-separated task names (full, or the last dotted part)
DIR_ENV = "OOMLAB_PROFILE_DIR"  # where each pool child writes its one capture
NATIVE_ENV = "OOMLAB_PROFILE_NATIVE"  # "1": memray also records native (C) frames (--profile-native)

# A chosen task's window in its pool child's capture: the probe makes one allocation of START_MARK
# bytes at task_prerun and one of END_MARK bytes at task_postrun, from the functions named here
# (a bytearray asks malloc for one byte more, so a reader allows MARK_SLACK bytes above each).
# memray records every allocation in order, so the window's edges are exact positions in the
# capture's own stream (no clock is involved); a reader knows a mark by its size and its frame.
START_MARK = 3001
END_MARK = 3101
START_FUNCTION = "_oomlab_task_window_starts"
END_FUNCTION = "_oomlab_task_window_ends"
MARK_SLACK = 64


def parse_names(text: str | None) -> tuple[str, ...]:
    """`--profile a,b` as a tuple; empty when profiling is off."""
    return tuple(name.strip() for name in (text or "").split(",") if name.strip())


def chosen(names: tuple[str, ...], task_name: str | None) -> bool:
    """Whether a task is profiled: "all", its full name, or the last part of a dotted name."""
    if not names or not task_name:
        return False
    return "all" in names or task_name in names or task_name.rsplit(".", 1)[-1] in names
