"""The broker's side of a delivery: how many messages wait in the run's queue (and, on Redis, sit
delivered but unacknowledged), and where a task's message is once every worker is gone.

Redis (kombu's virtual transport) is read directly: the queue is a list, delivered-but-unacked
messages sit in the `unacked` hash until acked or restored. RabbitMQ offers no view of one
message without taking it; once the worker's connections are closed (unacked messages go back to
the queue), a passive declare counts what waits and a basic.get takes it to read its id and
x-delivery-count: the queue is deleted right after, so taking it changes nothing."""

from __future__ import annotations

import json
import time

import redis
from kombu import Connection
from oomlab.record.delivery import Depth, Location


class RedisView:
    def __init__(self, url: str, queue: str):
        self.queue = queue
        self.client = redis.Redis.from_url(url.replace("redis+socket://", "unix://"))

    def _queue_keys(self) -> list[bytes]:
        # kombu spreads a queue over priority lists: "<queue>", "<queue>\x06\x163", ...
        return [k for k in self.client.scan_iter(match=f"{self.queue}*") if self.client.type(k) == b"list"]

    def depth(self) -> Depth:
        ready = sum(self.client.llen(k) for k in self._queue_keys())
        return Depth(time.monotonic(), ready, self.client.hlen("unacked"), None)

    def locate(self, task_ids: list[str]) -> list[Location]:
        queued = {_task_id(json.loads(raw)) for k in self._queue_keys() for raw in self.client.lrange(k, 0, -1)}
        unacked = {_task_id(json.loads(raw)[0]) for raw in self.client.hvals("unacked")}
        return [Location(t, "queued" if t in queued else "unacked" if t in unacked else "absent") for t in task_ids]

    def close(self) -> None:
        self.client.close()


class AmqpView:
    def __init__(self, url: str, queue: str):
        self.queue = queue
        self.connection = Connection(url, connect_timeout=3)
        self.channel = self.connection.channel()

    def _declare(self) -> tuple[int, int]:
        _, messages, consumers = self.channel.queue_declare(self.queue, passive=True)
        return messages, consumers

    def depth(self) -> Depth:
        try:
            messages, consumers = self._declare()
        except Exception:  # not declared yet; the failed declare closed the channel
            self.channel = self.connection.channel()
            return Depth(time.monotonic(), None, None, None)
        return Depth(time.monotonic(), messages, None, consumers)

    def locate(self, task_ids: list[str]) -> list[Location]:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and self._declare()[1] > 0:  # the dead worker's connection closing
            time.sleep(0.1)
        found: dict[str, int | None] = {}
        while (message := self.channel.basic_get(self.queue, no_ack=True)) is not None:
            headers = message.headers or {}
            if (task_id := headers.get("id")) is not None:
                found[task_id] = headers.get("x-delivery-count")
        return [Location(t, "queued", found[t]) if t in found else Location(t, "absent") for t in task_ids]

    def close(self) -> None:
        self.connection.release()


def _task_id(message: dict) -> str | None:
    return (message.get("headers") or {}).get("id")


BrokerView = RedisView | AmqpView


def open_view(url: str, queue: str) -> BrokerView:
    return RedisView(url, queue) if url.startswith("redis") else AmqpView(url, queue)
