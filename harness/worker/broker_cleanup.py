"""Delete what a run put on a service broker, by reading the broker rather than trusting a call.

kombu's `queue_delete` through a fresh connection deletes nothing on Redis (it drops only bindings
that connection declared itself), so on Redis the run's lists (priority lists too), its messages'
`unacked` entries and its `_kombu.binding*` members are found and removed here. On RabbitMQ the
queue goes, and so does the durable direct exchange of the same name that declaring it made.
Only what names this run's queue (or its worker's `oomlab-<run-id>@` pidbox) is touched: other runs
may share the broker.
"""

from __future__ import annotations

import json

# kombu's Redis transport (kombu/transport/redis.py): its key names and separator
SEP = "\x06\x16"
BINDING_PREFIXES = ("_kombu.binding.", "_kombu.binding_permanent.")
BINDING_DEADLINES = "_kombu.binding_deadlines"
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"
PRIORITY_STEPS = (3, 6, 9)  # priority 0 is the plain list


def delete_run_queue(broker_url: str, queue: str) -> list[str]:
    """Remove the run's queue and everything that refers to it; returns what was found and removed."""
    if broker_url.startswith(("redis://", "rediss://", "redis+socket://", "unix://")):
        return _delete_on_redis(broker_url, queue)
    if broker_url.startswith(("amqp://", "amqps://", "pyamqp://")):
        return _delete_on_amqp(broker_url, queue)
    from kombu import Connection

    with Connection(broker_url, connect_timeout=2) as connection:  # another transport: its own call
        connection.default_channel.queue_delete(queue)
    return [f"queue {queue}"]


def _worker_prefix(queue: str) -> str | None:
    """The pidbox queues of the run's own worker start with this (hostname `oomlab-<run-id>@host`)."""
    return f"oomlab-{queue.removeprefix('oomlab.')}@" if queue.startswith("oomlab.") else None


def _is_runs(queue_part: str, queue: str) -> bool:
    prefix = _worker_prefix(queue)
    return queue_part == queue or (prefix is not None and queue_part.startswith(prefix))


def _delete_on_redis(broker_url: str, queue: str) -> list[str]:
    import redis

    client = redis.Redis.from_url(
        broker_url.replace("redis+socket://", "unix://"), socket_connect_timeout=2, socket_timeout=5
    )
    try:
        removed = []
        for prefix in _key_prefixes(client, queue):
            removed += _redis_lists(client, queue, prefix) + _redis_unacked(client, queue, prefix)
            removed += _redis_bindings(client, queue, prefix)
    finally:
        client.close()
    return removed


def _key_prefixes(client, queue: str) -> list[str]:
    """ "" and every `global_keyprefix` (a transport option kombu puts before each key) under which the
    broker holds this queue's list or a binding: read from the keys, since the run that set the
    option may be gone (a SIGKILLed run's sweep)."""
    prefixes = {""}
    for pattern, anchor in (("*" + _glob_escape(queue), queue), ("*_kombu.binding*", "_kombu.binding")):
        for raw_key in client.scan_iter(match=pattern, count=500):
            key = raw_key.decode(errors="replace")
            prefixes.add(key[: key.index(anchor)])
    return sorted(prefixes)


def _redis_lists(client, queue: str, prefix: str = "") -> list[str]:
    names = [prefix + queue, *(f"{prefix}{queue}{SEP}{step}" for step in PRIORITY_STEPS)]
    names += [key.decode() for key in client.scan_iter(match=_glob_escape(prefix + queue + SEP) + "*", count=500)]
    removed = []
    for name in dict.fromkeys(names):
        if client.delete(name):
            removed.append(f"queue {queue}" if name == prefix + queue else f"queue {queue} (priority list)")
    return removed


def _redis_unacked(client, queue: str, prefix: str = "") -> list[str]:
    """Messages of this queue a dead worker had taken: kombu keeps them in `unacked` to restore later."""
    tags = []
    for tag, value in client.hscan_iter(prefix + UNACKED, count=500):
        try:
            _, exchange, routing_key = json.loads(value)
        except (ValueError, TypeError):
            continue
        if queue in (exchange, routing_key):
            tags.append(tag)
    if not tags:
        return []
    client.hdel(prefix + UNACKED, *tags)
    client.zrem(prefix + UNACKED_INDEX, *tags)
    return [f"{len(tags)} unacked message(s) of {queue}"]


def _redis_bindings(client, queue: str, key_prefix: str = "") -> list[str]:
    removed = 0
    emptied: list[str] = []
    for binding in BINDING_PREFIXES:
        prefix = key_prefix + binding
        for raw_key in client.scan_iter(match=_glob_escape(prefix) + "*", count=500):
            key = raw_key.decode()
            members = [m for m in client.smembers(key) if _is_runs(m.decode().rsplit(SEP, 1)[-1], queue)]
            if members:
                removed += client.srem(key, *members)
            if not client.exists(key) or key == prefix + queue:
                removed += client.delete(key)
                emptied.append(key.removeprefix(prefix))
    gone = [exchange for exchange in dict.fromkeys(emptied) if not _any_binding(client, exchange, key_prefix)]
    if gone:
        client.zrem(key_prefix + BINDING_DEADLINES, *gone)
    return [f"{removed} binding(s) of {queue}"] if removed else []


def _any_binding(client, exchange: str, key_prefix: str = "") -> bool:
    return any(client.exists(key_prefix + binding + exchange) for binding in BINDING_PREFIXES)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _delete_on_amqp(broker_url: str, queue: str) -> list[str]:
    """The queue and the direct exchange Celery declared for it (durable: it outlives the queue).
    Each is looked up first (a passive declare), so what is reported removed really existed."""
    from amqp.exceptions import NotFound
    from kombu import Connection

    removed = []
    with Connection(broker_url, connect_timeout=2) as connection:
        for kind in ("queue", "exchange"):
            channel = connection.channel()  # a NotFound closes its channel: each step gets its own
            try:
                if kind == "queue":
                    channel.queue_declare(queue=queue, passive=True)
                    channel.queue_delete(queue)
                else:
                    channel.exchange_declare(exchange=queue, type="direct", passive=True)
                    channel.exchange_delete(queue)
                removed.append(f"{kind} {queue}")
            except NotFound:
                pass
            finally:
                try:
                    channel.close()
                except Exception:  # closed by the broker already
                    pass
    return removed
