"""How a worker is started, shared by `oomlab run` (which starts its own) and `oomlab worker` (which
starts one for another oomlab to attach to): the Celery settings, the command line and the
environment the probe and the scenario read."""

from __future__ import annotations

import json
import os

from oomlab.config.scenario import Scenario, app_import_root
from oomlab.trust import import_env, python_argv
from oomlab.worker.celery_env import without_celery_env
from oomlab.worker.log_format import LOG_FORMAT


def worker_celery_conf(
    scenario: Scenario,
    overrides: dict,
    broker_url: str,
    backend_url: str,
    queue: str,
    task_events: bool = True,
    routes: dict | None = None,
) -> dict:
    """The worker's Celery settings: the scenario's, the user's over them, then what oomlab needs.
    Without `task_events` (a load run) the worker still sends its own events (heartbeats,
    online, offline), not three per task: the probe and the worker log already say what each task did.
    `routes`: a split run's `task_routes` (oomlab.config.routing), the same on the worker and the client."""
    return {
        "worker_log_format": LOG_FORMAT,
        "worker_task_log_format": LOG_FORMAT,
        **scenario.celery_conf,
        **overrides,
        "broker_url": broker_url,
        "result_backend": backend_url,
        "task_default_queue": queue,
        "worker_send_task_events": task_events,
        "task_send_sent_event": False,
        **({"task_routes": routes} if routes else {}),
    }


def worker_argv(pool: str, concurrency: int, queue: str, hostname: str, task_events: bool = True) -> list[str]:
    return python_argv(
        "-m",
        "celery",
        "-A",
        "oomlab.worker.app",
        "worker",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "-Q",
        queue,
        "-n",
        hostname,
        "--loglevel",
        "INFO",
        "--without-mingle",
        "--without-gossip",
        *(["-E"] if task_events else []),
    )


def worker_env(
    scenario: Scenario,
    celery_conf: dict,
    probe_path: str,
    queue: str,
    params: dict,
    variant: str,
    tracemalloc: bool,
    queue_arguments: dict,
    profile: tuple[str, ...] = (),
    profile_dir: str = "",
    profile_native: bool = False,
) -> dict[str, str]:
    """This process's environment plus what oomlab.worker.app reads at import. Celery's own
    environment overrides are left out: the broker and backend are the ones in `celery_conf`."""
    env = without_celery_env(dict(os.environ))
    env.update(
        {
            "OOMLAB_SCENARIO": scenario.module_ref,
            "OOMLAB_APP": scenario.app_ref or "",
            "OOMLAB_APP_PATH": app_import_root(scenario.app_ref) if scenario.app_ref else "",
            "OOMLAB_CELERY_CONF": json.dumps(jsonable(celery_conf)),
            "OOMLAB_PARAMS": json.dumps(params),
            "OOMLAB_VARIANT": variant,
            "OOMLAB_TRACEMALLOC": "1" if tracemalloc else "",
            "OOMLAB_PROBE_PATH": probe_path,
            "OOMLAB_QUEUE": queue,
            "OOMLAB_QUEUE_ARGUMENTS": json.dumps(queue_arguments),
            "OOMLAB_PROFILE": ",".join(profile),
            "OOMLAB_PROFILE_DIR": profile_dir,
            "OOMLAB_PROFILE_NATIVE": "1" if profile_native else "",
            **import_env(),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def jsonable(conf: dict) -> dict:
    return json.loads(json.dumps(conf, default=repr))
