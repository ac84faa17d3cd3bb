"""The task names a run sends, checked against the names the scenario's app registers in oomlab's
process before the worker starts (a misspelling), then against the names the worker registered (its
probe lists them when it is ready) before the first one is sent: a misspelled name is a scenario
error with its close matches, not a run of failed tasks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from oomlab.config.app_tasks import registered_locally
from oomlab.errors import UnknownTaskNames
from oomlab.probe.events import WORKER_READY

if TYPE_CHECKING:
    from oomlab.run.state import RunState


def registered_names(run: RunState) -> list[str] | None:
    """The names the worker's app registered, from its last worker_ready; None when unknown."""
    if run.observers is None:
        return None
    probe = run.observers.monitor.snapshot().probe
    ready = [names for r in probe if r["ev"] == WORKER_READY and isinstance(names := r.get("registered"), list)]
    return list(ready[-1]) if ready else None


CLOSE = 0.6  # difflib's ratio a close match reaches


def _own_part(name: str, other: str) -> tuple[str, str]:
    """The two names past the dotted module path they share: "proj.tasks.resize" against
    "proj.tasks.rotate" compares "resize" with "rotate", not two strings that are mostly the same module."""
    shared = 0
    for index, (a, b) in enumerate(zip(name, other, strict=False)):
        if a != b:
            break
        if a == ".":
            shared = index + 1
    return name[shared:], other[shared:]


def close_matches(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The registered names close to `name`, best first, judged on the part of each name past the
    module path both share (every task of a module shares its path with a misspelling in it)."""
    import difflib  # an unknown name's suggestions only: a run whose names all match never loads it

    scored = []
    for candidate in known:
        own, theirs = _own_part(name, candidate)
        ratio = difflib.SequenceMatcher(None, own, theirs).ratio()
        if ratio >= CLOSE:
            scored.append((-ratio, candidate))
    return [candidate for _, candidate in sorted(scored)[:n]]


def unknown_names(sent: Iterable[str], registered: Iterable[str], whose: str = "the worker's app") -> str | None:
    """One sentence naming each unknown name and its close matches; None when every name is known."""
    known = sorted(set(registered))
    unknown = sorted({name for name in sent if not name.startswith("celery.")} - set(known))
    if not unknown:
        return None
    parts = []
    for name in unknown:
        close = close_matches(name, known)
        said = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else " (no close match)"
        parts.append(f"{name!r}{said}")
    return (
        f"the run would send task name(s) {whose} does not register: {', '.join(parts)}; "
        f"it registers {len(known)} task(s)"
    )


def check_names_locally(app: Any, sent: Iterable[str]) -> None:
    """Before the worker starts: a name the scenario's app (imported in oomlab's process already)
    does not register, but one close to it does, is a misspelling (UnknownTaskNames, exit 6, before
    any worker, broker or summary). A name with no close match is left to `check_registered`: the
    worker's app may register tasks this process never imports."""
    known = registered_locally(app)
    if known is None:
        return
    typos = [
        name for name in sent if not name.startswith("celery.") and name not in known and close_matches(name, known)
    ]
    sentence = unknown_names(typos, known, "the scenario's app") if typos else None
    if sentence:
        raise UnknownTaskNames(sentence)


def check_registered(run: RunState, sent: Iterable[str]) -> None:
    registered = registered_names(run)
    if registered is None:
        return  # a worker oomlab's probe did not see get ready (attached): Celery's own log says it
    sentence = unknown_names(sent, registered)
    if sentence:
        raise UnknownTaskNames(sentence)
