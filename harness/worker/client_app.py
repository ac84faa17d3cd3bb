"""The harness's side of the scenario's Celery app: pointed at one run's broker, then let go of it.

`--compare` runs several workers from one oomlab process, each with its own embedded broker; the
app caches its producer pool and result backend, so each run must drop them when it ends. kombu keeps
its pools in process-wide groups keyed by the broker URL, so the closed ones are taken out of those too:
runs that share one `--broker` would otherwise be handed the last run's closed pool. A result the
caller still holds unsubscribes when it is collected (often at exit, after the run's broker is gone):
Celery's redis backend retries that for ~20 s, so the backend's subscription is closed first.
"""

from __future__ import annotations

import threading

from kombu import pools
from kombu.utils.collections import eqhash


def point_at(app, conf: dict) -> None:
    detach(app)
    app.conf.update(conf)


def detach(app) -> None:
    pool = app._pool
    if pool is not None:
        key = eqhash(app.connection_for_write())  # the settings are still the ending run's
        for group in (pools.producers, pools.connections):
            kept = dict.pop(group, key, None)
            if kept is not None and kept is not pool:
                kept.force_close_all()
        pool.force_close_all()
    app._pool = None
    if "amqp" in app.__dict__:
        app.amqp._producer_pool = None
        del app.__dict__["amqp"]  # its queues, exchange and routes are cached from the last run's settings
    _close_results(app._backend)
    app._backend_cache = None
    app._local = threading.local()


def _close_results(backend) -> None:
    """Close the backend's result subscription: a result collected later unsubscribes from nothing."""
    consumer = getattr(backend, "result_consumer", None)
    if consumer is not None and getattr(consumer, "_pubsub", None) is not None:
        consumer.stop()
        consumer._pubsub = None
