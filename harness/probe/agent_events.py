"""The names `oomlab agent` and its probe share, in a module without Celery: the agent's own process
learns them here and never imports Celery, kombu or redis until a repair needs them."""

from __future__ import annotations

LOADER_ENV = "CELERY_LOADER"  # Celery reads its loader class from here when an app names none
LOADER = "oomlab.probe.loader:ProbeLoader"

APP = "agent_app"  # the app's settings and its redelivered task names
MESSAGE = "agent_message"  # a redelivered task's message, at its start
LOST = "agent_lost"  # Celery stored WorkerLostError for a task (main process)
REVOKED = "agent_revoked"  # Celery dropped a revoked task's message and stored REVOKED (main process)
