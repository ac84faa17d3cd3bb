"""`--broker` against the machine's real Redis and RabbitMQ (in CI both must be running)."""

from __future__ import annotations

import os

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.services]

BROKERS = {
    "redis": os.environ.get("OOMLAB_TEST_REDIS", "redis://127.0.0.1:6379/7"),
    "rabbitmq": os.environ.get("OOMLAB_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//"),
}


@pytest.mark.parametrize("name", sorted(BROKERS))
def test_external_broker(oomlab, name):
    args = ["run", "alloc", "--broker", BROKERS[name], "--tasks", "5", "--memory", "256MiB"]
    if name == "rabbitmq":
        args += ["--result-backend", BROKERS["redis"]]
    result = oomlab(*args)
    assert result.code == 0, result.stderr
    record = result.record
    over = next(t for t in record["tasks"] if t["label"].startswith("over-limit"))
    assert over["outcome"] == "killed"
    assert [t["outcome"] for t in record["tasks"] if t is not over] == ["succeeded"] * 4
    assert record["worker"]["broker"].startswith(BROKERS[name].split("://")[0])
    assert not queue_exists(BROKERS[name], record["worker"]["queue"]), "the run's queue was left on the broker"


def queue_exists(url: str, queue: str) -> bool:
    from kombu import Connection

    with Connection(url) as connection:
        if url.startswith("redis"):
            return bool(connection.default_channel.client.exists(queue))
        try:
            connection.default_channel.queue_declare(queue, passive=True)
            return True
        except connection.channel_errors:
            return False


def test_a_sigkilled_runs_queue_on_rabbitmq_is_deleted_by_its_janitor(oomlab, tmp_path):
    """The lease names the broker without its password, so the run's janitor (which holds it in
    memory only) deletes the durable queue the moment the run is SIGKILLed; the next run sweeps the rest."""
    import json
    import subprocess

    from oomlab.worker.proc import wait_until

    from tests.conftest import TIME_SCALE, oomlab_cmd, wait_for_tasks_running

    argv = [
        "run",
        "alloc",
        "--param",
        "hold=5",
        "--broker",
        BROKERS["rabbitmq"],
        "--result-backend",
        BROKERS["redis"],
        "--results",
        str(tmp_path),
    ]
    # a state directory of the test's own: no other run on the machine sweeps this run's lease meanwhile
    state = {"OOMLAB_STATE_DIR": str(tmp_path / "state")}
    env = {**os.environ, **state}
    proc = subprocess.Popen(oomlab_cmd(*argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    run_dir = wait_for_tasks_running(tmp_path)
    proc.kill()
    proc.wait()
    queue = json.load(open(os.path.join(run_dir, "run.json")))["worker"]["queue"]
    gone = wait_until(lambda: not queue_exists(BROKERS["rabbitmq"], queue), 15 * TIME_SCALE, 0.2)
    assert gone, "the SIGKILLed run's durable queue was left on the broker"
    result = oomlab("run", "alloc", "--tasks", "1", "--param", "over=0", env=state)
    assert result.code == 0, result.stderr
    assert result.record["environment"]["cleaned_up_after_previous_runs"], "the next run swept nothing"
    assert os.listdir(tmp_path / "state") == [], "a lease was left"
    assert not queue_exists(BROKERS["rabbitmq"], queue)


def test_the_runs_own_result_keys_are_deleted_only_when_oomlab_chose_the_backend(oomlab):
    """--broker redis://... alone: results went to the broker's database because oomlab put them
    there, so the run deletes its own celery-task-meta keys and nothing else; with --result-backend
    named by the user they stay."""
    import redis

    url = BROKERS["redis"]
    client = redis.Redis.from_url(url)
    foreign = "celery-task-meta-not-this-runs-0000"
    client.set(foreign, "{}")
    try:
        chosen = oomlab("run", "alloc", "--broker", url, "--tasks", "2", "--param", "over=0")
        assert chosen.code == 0, chosen.stderr
        ids = [task["id"] for task in chosen.record["tasks"]]
        assert not any(client.exists(f"celery-task-meta-{task_id}") for task_id in ids)
        assert chosen.record["environment"]["result_keys_deleted"] == len(ids)
        assert client.exists(foreign), "a key of no task of this run was deleted"
        named = oomlab("run", "alloc", "--broker", url, "--result-backend", url, "--tasks", "2", "--param", "over=0")
        assert named.code == 0, named.stderr
        kept = [f"celery-task-meta-{task['id']}" for task in named.record["tasks"]]
        assert all(client.exists(key) for key in kept) and named.record["environment"]["result_keys_deleted"] is None
        client.delete(*kept)
    finally:
        client.delete(foreign)
        client.close()
