"""Celery's own view, as its event stream tells it: task-failed (WorkerLostError), worker
heartbeats, online/offline. Captured on a thread with the time each event arrived."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

from oomlab.record.schema import CeleryEvent

_KEPT = ("exception", "traceback", "freq", "active", "processed", "pid", "name", "state", "signum", "exitcode")


def epoch_receiver(app: Any, connection: Any, handler: Callable[[dict[str, Any]], None]) -> Any:
    """Celery's event receiver with each event's timestamp as the sender wrote it (seconds since the
    epoch): by default it "localizes" it by the sender's utcoffset against this process's time zone,
    so a worker whose app set another zone (a Django TIME_ZONE sets TZ) would shift every stored
    time by hours."""
    receiver = app.events.Receiver(connection, handlers={"*": handler})
    receiver.event_from_message = functools.partial(receiver.event_from_message, localize=False)
    return receiver


class CeleryEventCapture(threading.Thread):
    def __init__(self, app: Any, hostname: str, wall_to_mono: Callable[[float], float]):
        super().__init__(name="oomlab-celery-events", daemon=True)
        self.app = app
        self.hostname = hostname
        self.wall_to_mono = wall_to_mono
        self.events: list[CeleryEvent] = []
        self.error: str | None = None
        self._receiver = None
        self._lock = threading.Lock()
        self.connected = threading.Event()

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("hostname") not in (None, self.hostname):
            return
        stamp = event.get("timestamp")
        record = CeleryEvent(
            type=event.get("type", "?"),
            received_mono=time.monotonic(),
            timestamp_wall=stamp,
            timestamp_mono=self.wall_to_mono(stamp) if stamp else None,
            hostname=event.get("hostname"),
            uuid=event.get("uuid"),
            fields={key: event[key] for key in _KEPT if key in event},
        )
        with self._lock:
            self.events.append(record)

    def prune(self, keep: Callable[[CeleryEvent], bool]) -> None:
        """Drop the events `keep` refuses (a load run keeps kills' and heartbeats' evidence, not
        three task events per task sent, which would grow with the run)."""
        with self._lock:
            self.events = [event for event in self.events if keep(event)]

    def snapshot(self) -> list[CeleryEvent]:
        with self._lock:
            return list(self.events)

    def run(self) -> None:
        try:
            with self.app.connection_for_read() as connection:
                receiver = self._receiver = epoch_receiver(self.app, connection, self._on_event)
                self.connected.set()
                receiver.capture(limit=None, timeout=None, wakeup=False)
        except Exception as exc:  # the run goes on without Celery's view, and says so
            self.error = f"{type(exc).__name__}: {exc}"
            self.connected.set()

    def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        self.join(timeout=3)
