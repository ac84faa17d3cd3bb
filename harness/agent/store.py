"""What every replica of a worker sees alike, kept in Redis (the app's result backend, else its
broker): the OOM kills counted per task id, and the dead-letter list of messages the delivery cap
stopped. Keys are per app (its main name) and expire, so nothing grows for ever:

    oomlab:agent:<app>:kills:<task id>     a list of kill records (JSON), its length is the count
    oomlab:agent:<app>:dead                a hash: task id -> the dead-lettered message and its kills
"""

from __future__ import annotations

import json
import time

KILLS_TTL_S = 7 * 24 * 3600  # a task id's kills are forgotten a week after its last one


def redis_url(conf: dict) -> str | None:
    for key in ("result_backend", "broker_url"):
        url = conf.get(key) or ""
        if isinstance(url, str) and url.startswith(("redis://", "rediss://", "unix://")):
            return url
    return None


class Store:
    def __init__(self, url: str, app_name: str):
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = f"oomlab:agent:{app_name or 'celery'}"

    @property
    def dead_key(self) -> str:
        return f"{self.prefix}:dead"

    def count_kill(self, task_id: str, record: dict) -> int:
        """Add one kill record for the task; how many kills it has now, over every replica."""
        key = f"{self.prefix}:kills:{task_id}"
        pipe = self.client.pipeline()
        pipe.rpush(key, json.dumps(record))
        pipe.expire(key, KILLS_TTL_S)
        count, _ = pipe.execute()
        return int(count)

    def kills(self, task_id: str) -> list[dict]:
        return [json.loads(item) for item in self.client.lrange(f"{self.prefix}:kills:{task_id}", 0, -1)]

    def dead_letter(self, task_id: str, message: dict | None, kills: list[dict], error: str) -> None:
        entry = {"id": task_id, "message": message, "kills": kills, "error": error, "at": time.time()}
        self.client.hset(self.dead_key, task_id, json.dumps(entry))

    def is_dead(self, task_id: str) -> bool:
        return bool(self.client.hexists(self.dead_key, task_id))

    def dead(self) -> dict[str, dict]:
        return {
            k.decode() if isinstance(k, bytes) else k: json.loads(v)
            for k, v in self.client.hgetall(self.dead_key).items()
        }

    def forget(self, task_id: str) -> None:
        self.client.hdel(self.dead_key, task_id)
        self.client.delete(f"{self.prefix}:kills:{task_id}")
