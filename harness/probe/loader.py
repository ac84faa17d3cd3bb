"""How `oomlab agent` loads the probe into a worker whose command it does not change: Celery reads
the loader class from the CELERY_LOADER environment variable when an app does not name one, and
instantiates it in the worker's main process before the worker initialises and before the pool
forks. This loader is Celery's own AppLoader plus the agent's probe (oomlab.probe.agent_hooks: what
the agent uses, not the lab's recorder), so the user's `celery -A APP worker ...` runs as written and
every pool child inherits the handlers.

Limits: an app constructed with `Celery(loader=...)` keeps its own loader (and no probe); the
variable reaches every Celery program the worker starts (harmless: the probe stays silent without
OOMLAB_PROBE_FD)."""

from __future__ import annotations

from celery.loaders.app import AppLoader
from oomlab.probe import agent_hooks as _agent_hooks  # noqa: F401  (connects the signal handlers on import)
from oomlab.probe.agent_events import LOADER, LOADER_ENV

__all__ = ["LOADER", "LOADER_ENV", "ProbeLoader"]


class ProbeLoader(AppLoader):
    """Celery's default loader; importing this module connected the agent's probe."""
