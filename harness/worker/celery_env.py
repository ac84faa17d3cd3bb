"""Celery's environment overrides, which win over any configured setting: CELERY_BROKER_URL would
send a run's tasks (and a worker's queue, exchange and binding) to another broker than the one
oomlab chose and records, and CELERY_LOADER / CELERY_CONFIG_MODULE / CELERY_CUSTOM_WORKER_POOL name
code Celery imports, and CELERY_WORKDIR where it imports from. oomlab's client and every worker it starts run without them."""

from __future__ import annotations

import os

CELERY_ENV = (
    "CELERY_BROKER_URL",
    "CELERY_BROKER_READ_URL",
    "CELERY_BROKER_WRITE_URL",
    "CELERY_RESULT_BACKEND",
    "CELERY_CONFIG_MODULE",
    "CELERY_LOADER",
    "CELERY_CUSTOM_WORKER_POOL",
    "CELERY_WORKDIR",  # `celery --workdir`: the directory the worker changes to, then imports from first
)


def without_celery_env(env: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if name not in CELERY_ENV}


def clear_celery_env() -> None:
    """This process's own client: the broker and backend it was pointed at, not the environment's."""
    for name in CELERY_ENV:
        os.environ.pop(name, None)
