"""The result keys a run leaves in a Redis result backend oomlab chose for it: with `--broker
redis://...` and no `--result-backend`, results go to the broker's database, which the user gave as a
broker, not as a place to keep results. At the end of such a run its own `celery-task-meta-<id>` keys
are deleted, by the task ids the run recorded (sent by it, or by its tasks); no other key is touched,
so other runs and other users of the database keep theirs. A backend the user named is left alone."""

from __future__ import annotations

from collections.abc import Iterable

RESULT_PREFIX = "celery-task-meta-"  # Celery's Redis backend (celery/backends/base.py, KeyValueStoreBackend)
BATCH = 1000


def delete_run_results(backend_url: str, task_ids: Iterable[str], key_prefix: str = "") -> int:
    """Delete the result key of each task id (`key_prefix`: Celery's `global_keyprefix`, if set);
    returns how many existed and were deleted."""
    import redis

    client = redis.Redis.from_url(
        backend_url.replace("redis+socket://", "unix://"), socket_connect_timeout=2, socket_timeout=5
    )
    deleted = 0
    try:
        batch: list[str] = []
        for task_id in task_ids:
            batch.append(f"{key_prefix}{RESULT_PREFIX}{task_id}")
            if len(batch) >= BATCH:
                deleted += int(client.delete(*batch))
                batch = []
        if batch:
            deleted += int(client.delete(*batch))
    finally:
        client.close()
    return deleted
