"""The `celery -A` target of every oomlab worker: the scenario's own app, pointed at the run's broker
and queue, with the probe connected. The user's code is imported as it is, never modified."""

from __future__ import annotations

import json
import os
import sys

from oomlab.config.routing import declared_queue
from oomlab.config.scenario import import_scenario_module, resolve_app

if os.environ.get("OOMLAB_PROBE", "1") != "0":  # off only to measure the probe's own cost (bench/overhead)
    from oomlab.probe import recorder as probe  # noqa: F401  (connects the signal handlers before the pool forks)

if os.environ.get("OOMLAB_APP_PATH"):  # the user's own app's folder: after the standard library, never before
    sys.path.append(os.environ["OOMLAB_APP_PATH"])
app = resolve_app(os.environ.get("OOMLAB_APP") or import_scenario_module(os.environ["OOMLAB_SCENARIO"]).app)
app.conf.update(json.loads(os.environ.get("OOMLAB_CELERY_CONF", "{}")))
# the run's queue as the client declared it (a quorum queue's arguments must match on both sides)
app.conf.task_queues = [
    declared_queue(os.environ["OOMLAB_QUEUE"], json.loads(os.environ.get("OOMLAB_QUEUE_ARGUMENTS") or "{}"))
]

if os.environ.get("OOMLAB_WORKER_LOG"):  # `oomlab worker`: its log to stdout (the container's) and to the share
    import logging

    from celery.signals import after_setup_logger
    from oomlab.trust import nofollow_opener
    from oomlab.worker.log_format import LOG_FORMAT

    class _NoFollowFileHandler(logging.FileHandler):
        """The share's worker.log, never written through a symlink planted in its place."""

        def _open(self):
            return open(
                self.baseFilename, self.mode, encoding=self.encoding, errors=self.errors, opener=nofollow_opener
            )

    @after_setup_logger.connect
    def _log_to_the_share(logger, **_kwargs) -> None:
        from celery.utils.log import get_multiprocessing_logger

        handler = _NoFollowFileHandler(os.environ["OOMLAB_WORKER_LOG"])
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(handler)
        # billiard's logger (a dead child's "Process ... exited with ...") does not propagate to the root
        if (pool_logger := get_multiprocessing_logger()) is not None:
            pool_logger.addHandler(handler)
