"""Times oomlab stores are seconds since the epoch whatever time zone the app's worker runs in: a
Celery event from a worker whose app set another zone (Django's TIME_ZONE sets TZ) keeps the
timestamp its sender wrote. Celery's own receiver on its in-memory transport, no worker."""

from __future__ import annotations

import time

from celery import Celery
from celery.utils.time import utcoffset
from oomlab.observe.detectors.celery_events import epoch_receiver


def test_an_event_from_a_worker_in_another_time_zone_keeps_its_epoch_timestamp():
    app = Celery("tz", broker="memory://", set_as_current=False)
    seen: list[dict] = []
    sent = time.time()
    with app.connection_for_read() as connection:
        receiver = epoch_receiver(app, connection, seen.append)
        # the worker's zone is 9 hours east of this process's (Asia/Tokyo beside UTC)
        body = {"type": "worker-heartbeat", "hostname": "w@h", "timestamp": sent, "utcoffset": utcoffset() + 9}
        receiver._receive(body, None)
        plain = app.events.Receiver(connection, handlers={"*": seen.append})
        plain._receive(dict(body), None)
    ours, celerys = seen
    assert ours["timestamp"] == sent
    assert abs(celerys["timestamp"] - (sent - 9 * 3600)) < 1  # what was stored before: 9 hours off
