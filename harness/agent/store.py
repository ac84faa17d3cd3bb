"""What every replica of a worker sees alike, kept in Redis (the app's result backend, else its
broker): the OOM kills counted per task id, and the dead-letter list of messages the delivery cap
stopped. Keys are per app (its main name) and expire, so nothing grows for ever:

    oomlab:agent:<app>:kills:<task id>     a list of kill records (JSON), its length is the count
    oomlab:agent:<app>:message:<task id>   the task's message as a killed delivery knew it: the dead
                                           letter takes it from whichever delivery had it (another
                                           replica's, or this one's before the agent restarted)
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

    def count_kill(self, task_id: str, record: dict, message: dict | None = None) -> int:
        """Add one kill record for the task (and its message, when this delivery's is known); how many
        kills it has now, over every replica."""
        key = f"{self.prefix}:kills:{task_id}"
        pipe = self.client.pipeline()
        pipe.rpush(key, json.dumps(record))
        pipe.expire(key, KILLS_TTL_S)
        if message:
            pipe.set(f"{self.prefix}:message:{task_id}", json.dumps(message), ex=KILLS_TTL_S)
        count = pipe.execute()[0]
        return int(count)

    def message(self, task_id: str) -> dict | None:
        """The message an earlier killed delivery of the task kept, if any."""
        raw = self.client.get(f"{self.prefix}:message:{task_id}")
        return json.loads(raw) if raw else None

    def kills(self, task_id: str) -> list[dict]:
        return [json.loads(item) for item in self.client.lrange(f"{self.prefix}:kills:{task_id}", 0, -1)]

    def dead_letter(
        self, task_id: str, message: dict | None, kills: list[dict], error: str, no_message: str | None = None
    ) -> None:
        """`no_message`: why no message is kept (said by `oomlab replay`), when none is."""
        entry = {"id": task_id, "message": message, "kills": kills, "error": error, "at": time.time()}
        if message is None:
            entry["no_message"] = no_message
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
        self.client.delete(f"{self.prefix}:kills:{task_id}", f"{self.prefix}:message:{task_id}")
