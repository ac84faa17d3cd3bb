"""Publishing task messages from a few threads. A lone publish waits a round trip for the broker
(kombu's Redis transport: one LPUSH, answered before the next), so threads overlap the waits (Celery's
producer pool is thread-safe); the bookkeeping of each send is done under the driver's lock, once
per batch.

The harness shares the worker's cores, so each send is kept cheap: the sends handed over together go
out as one batch (kombu's `Producer.batch()`, where the transport has it: one pipelined round trip for
all of them, through one producer held for the batch rather than one taken from the pool per message),
a thread declares the queue with its first publish only (Celery otherwise re-binds and re-declares it
with every message: ~12 % of a send's CPU), and a closed loop hands a thread many calls at once rather
than waking one per task."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from oomlab.config.scenario import TaskCall
from oomlab.errors import BrokerUnreachable
from oomlab.run.sending import send_call

THREADS = 4
BATCH = 128  # sends a thread publishes in one go (one pipelined round trip where the transport can)


@dataclass(slots=True)
class Send:
    task_id: str
    call: TaskCall
    due: float | None  # seconds after the load began it was due (an open loop), or None
    began: Callable[[float], None]  # told when its publish began


class Sender:
    def __init__(
        self,
        app: Any,
        queue: Any,
        on_sent: Callable[[str, float, float | None], None],
        threads: int = THREADS,
        lock: threading.Lock | None = None,
    ):
        self.app = app
        self.queue = queue
        self.on_sent = on_sent  # (task name, when the publish began, when it was due) under the lock
        self.lock = lock or threading.Lock()
        self.error: str | None = None
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="oomlab-send")
        self._declared = threading.local()

    def submit(self, sends: Sequence[Send]) -> None:
        """Publish `sends` in order: one batch per BATCH sends, spread over the sending threads."""
        for first in range(0, len(sends), BATCH):
            self._pool.submit(self._publish, sends[first : first + BATCH])

    def _publish(self, sends: Sequence[Send]) -> None:
        if self.error:
            return
        app = self.app
        backend = app.backend  # Celery keeps one per thread
        if "on_task_call" not in backend.__dict__:
            # the Redis backend subscribes to every task's result channel as it is sent (a set and a
            # channel that grow per task); a load run follows tasks through the probe instead
            backend.on_task_call = _no_subscription
        began: list[float] = []
        try:
            with app.producer_or_acquire() as producer, _batch(producer, len(sends)):
                for send in sends:
                    # None: Celery declares the queue (this thread's first publish); [] skips it after that
                    declare: list[Any] | None = [] if getattr(self._declared, "done", False) else None
                    now = time.monotonic()
                    send.began(now)
                    began.append(now)
                    call = send.call
                    send_call(app, call, send.task_id, self.queue, declare=declare, producer=producer)
                    self._declared.done = True
        except Exception as exc:  # the driver stops the run with this sentence
            self.error = self.error or f"{type(exc).__name__}: {exc}"
            return
        with self.lock:
            for send, now in zip(sends, began, strict=True):
                self.on_sent(send.call.task, now, send.due)

    def check(self) -> None:
        if self.error:
            raise BrokerUnreachable(f"sending a task to the broker failed: {self.error}")

    def close(self) -> None:
        """Wait for the publishes under way (a run ends with every submitted task sent or failed)."""
        self._pool.shutdown(wait=True)


def _batch(producer: Any, size: int) -> AbstractContextManager[Any]:
    """kombu's publish batch for `size` sends (kombu 5.7 on; older ones publish each at once)."""
    if size > 1 and hasattr(producer, "batch"):
        batch: AbstractContextManager[Any] = producer.batch(max_size=size)
        return batch
    return nullcontext()


def _no_subscription(*_args: object, **_kwargs: object) -> None:
    return None
