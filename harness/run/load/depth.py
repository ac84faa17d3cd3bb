"""The broker's queue depth (messages waiting, not yet taken by the worker), read once a second.

Redis (the embedded broker too): the list's length, summed over kombu's priority lists
(`queue`, `queue\\x06\\x163`, ...). AMQP: the queue's message count from a passive declare."""

from __future__ import annotations

from typing import Any

PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)  # kombu's Redis transport default


class QueueDepth:
    def __init__(self, app: Any, broker_url: str, queue: str):
        self.app = app
        self.queue = queue
        self.redis = None
        self.error: str | None = None
        if broker_url.startswith(("redis://", "rediss://", "redis+socket://")):
            import redis

            self.redis = redis.Redis.from_url(broker_url.replace("redis+socket://", "unix://"), socket_timeout=2)
            self.keys = [queue] + [f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS[1:]]

    def read(self) -> int | None:
        """Messages waiting now (None once reading failed; the reason is kept in `error`)."""
        if self.error:
            return None
        try:
            if self.redis is not None:
                pipe = self.redis.pipeline(transaction=False)
                for key in self.keys:
                    pipe.llen(key)
                return int(sum(pipe.execute()))
            with self.app.connection_for_read() as connection:
                declared = connection.default_channel.queue_declare(self.queue, passive=True)
                return int(declared.message_count)
        except Exception as exc:  # depth is a view on the run, never a reason to stop it
            self.error = f"{type(exc).__name__}: {exc}"
            return None

    def close(self) -> None:
        if self.redis is not None:
            self.redis.close()
