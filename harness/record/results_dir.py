"""The results directory, made with a `.gitignore` of its own (`*`) when oomlab makes it, so run
records (which hold the app's arguments and settings) are never committed by a `git add -A`."""

from __future__ import annotations

import os

GITIGNORE = "*\n"


def make_results_dir(path: str) -> None:
    """Make `path` (and its parents) if missing; a directory oomlab made gets `.gitignore`. One the
    user made is left as it is."""
    if os.path.isdir(path):
        return
    os.makedirs(path, exist_ok=True)
    fd = os.open(os.path.join(path, ".gitignore"), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(GITIGNORE)
