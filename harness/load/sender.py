"""Publishing task messages from a few threads. A publish waits a round trip for the broker (kombu's
Redis transport: one LPUSH, answered before the next), so one thread sends at most one message per
round trip; on a busy host that is ~2 ms, under 500/s. Threads overlap the waits (Celery's producer
pool is thread-safe); the bookkeeping of each send is done under the driver's lock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from harness.errors import BrokerUnreachable
from harness.scenario import TaskCall

THREADS = 4


class Sender:
    def __init__(self, app, queue, on_sent: Callable[[str, float, float | None], None], threads: int = THREADS):
        self.app = app
        self.queue = queue
        self.on_sent = on_sent  # (task name, when the publish began, when it was due) under the lock
        self.lock = threading.Lock()
        self.error: str | None = None
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="oomlab-send")

    def submit(self, task_id: str, call: TaskCall, due: float | None, began: Callable[[float], None]) -> None:
        """Publish `call` as `task_id` on a sending thread; `began(t)` is told when its publish began."""
        self._pool.submit(self._publish, task_id, call, due, began)

    def _publish(self, task_id: str, call: TaskCall, due: float | None, began: Callable[[float], None]) -> None:
        if self.error:
            return
        backend = self.app.backend  # Celery keeps one per thread
        if "on_task_call" not in backend.__dict__:
            # the Redis backend subscribes to every task's result channel as it is sent (a set and a
            # channel that grow per task); a load run follows tasks through the probe instead
            backend.on_task_call = _no_subscription
        now = time.monotonic()
        began(now)
        try:
            self.app.send_task(call.task, args=call.args, kwargs=call.kwargs, task_id=task_id, queue=self.queue)
        except Exception as exc:  # the driver stops the run with this sentence
            self.error = self.error or f"{type(exc).__name__}: {exc}"
            return
        with self.lock:
            self.on_sent(call.task, now, due)

    def check(self) -> None:
        if self.error:
            raise BrokerUnreachable(f"sending a task to the broker failed: {self.error}")

    def close(self) -> None:
        """Wait for the publishes under way (a run ends with every submitted task sent or failed)."""
        self._pool.shutdown(wait=True)


def _no_subscription(*_args, **_kwargs) -> None:
    return None
