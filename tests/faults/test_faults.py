"""Fault injection: signals during cleanup, oomlab SIGKILLed at random moments, a broker and a result
backend that go away mid-run, a full results disk. After each, the next run leaves nothing behind and
every record under the results directory is readable JSON with a final status. What is left on a
broker is read from the broker itself (redis-cli, rabbitmqctl), never taken from oomlab's word."""

from __future__ import annotations

import glob
import json
import os
import random
import signal
import socket
import subprocess
import time
from typing import get_args

import pytest
from oomlab.record.schema import RunStatus
from oomlab.worker import proc

from tests.conftest import TIME_SCALE, assert_nothing_left, oomlab_cmd, wait_for_tasks_running
from tests.faults.rabbitmq_node import free_port, new_node

pytestmark = [pytest.mark.integration, pytest.mark.services]

REDIS = os.environ.get("OOMLAB_TEST_REDIS", "redis://127.0.0.1:6379/7")
AMQP = os.environ.get("OOMLAB_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
FINAL = set(get_args(RunStatus)) - {"starting", "running"}  # every status a finished record may hold
DOCUMENTED = {0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 129, 130, 143}
SLOW_TASKS = ["--param", "hold=4", "--param", "over=0", "--tasks", "4", "--concurrency", "1", "--memory", "200MiB"]


def records_are_final(results: str) -> list[dict]:
    records = []
    for path in glob.glob(os.path.join(results, "*", "run.json")):
        with open(path) as handle:
            record = json.load(handle)  # readable JSON, whatever happened
        assert record["status"] in FINAL, (path, record["status"], record.get("message"))
        assert not os.path.exists(f"{path}.tmp"), f"{path}.tmp was left"
        records.append(record)
    return records


def clean_run(results: str) -> dict:
    """The next run: one quick task; its sweep cleans up after the faulty ones."""
    argv = ["run", "alloc", "--tasks", "1", "--param", "over=0", "--results", results]
    done = subprocess.run(oomlab_cmd(*argv), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    run_dir = done.stdout.strip().splitlines()[-1]
    with open(os.path.join(run_dir, "run.json")) as handle:
        return json.load(handle)


def redis_keys_naming(url: str, run_id: str) -> list[str]:
    """Every key of the broker's database that names the run, and every binding member that does."""
    db = url.rsplit("/", 1)[-1] or "0"
    cli = ["redis-cli", "-h", "127.0.0.1", "-p", url.rsplit(":", 1)[-1].split("/")[0], "-n", db, "--no-raw"]
    keys = subprocess.run([*cli, "--scan"], capture_output=True, text=True, check=True).stdout.split()
    found = [key for key in keys if run_id in key]
    for key in keys:
        if key.strip('"').startswith("_kombu.binding.") or key.strip('"').startswith("_kombu.binding_permanent."):
            members = subprocess.run([*cli, "smembers", key.strip('"')], capture_output=True, text=True).stdout
            found += [f"{key}: {m}" for m in members.splitlines() if run_id in m]
    unacked = subprocess.run([*cli, "hgetall", "unacked"], capture_output=True, text=True).stdout
    found += [f"unacked: {line[:80]}" for line in unacked.splitlines() if run_id in line]
    return found


def start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(oomlab_cmd(*argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_and_third_signal_do_not_cut_cleanup_short(tmp_path):
    results = str(tmp_path / "results")
    process = start(["run", "alloc", *SLOW_TASKS, "--results", results])
    run_dir = wait_for_tasks_running(results)
    process.send_signal(signal.SIGINT)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGINT):
        time.sleep(0.05)
        process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    record = records_are_final(results)[0]
    assert record["status"] == "interrupted"
    assert not os.path.exists(os.path.join(run_dir, "redis.sock"))
    assert_nothing_left(record["run_id"])


def test_sighup_cleans_up_like_sigterm(tmp_path):
    """A closed terminal or SSH session: the run stops, cleans up everything it started (cgroup,
    lease, socket, the worker's TMPDIR) and records `interrupted`, then exits 128 + SIGHUP."""
    results = str(tmp_path / "results")
    process = start(["run", "alloc", *SLOW_TASKS, "--results", results])
    run_dir = wait_for_tasks_running(results)
    with open(os.path.join(run_dir, "run.json")) as handle:
        tmpdir = json.load(handle)["worker"]["tmpdir"]
    assert tmpdir and os.path.isdir(tmpdir)
    process.send_signal(signal.SIGHUP)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 129, err
    assert "Traceback" not in err and "interrupted" in err
    record = records_are_final(results)[0]
    assert record["status"] == "interrupted" and "SIGHUP" in record["message"]
    assert not os.path.exists(os.path.join(run_dir, "redis.sock")) and not os.path.exists(tmpdir)
    assert_nothing_left(record["run_id"])


def _records(results: str) -> set[str]:
    return set(glob.glob(os.path.join(results, "*", "run.json")))


def test_oomlab_sigkilled_at_random_moments(tmp_path):
    results = str(tmp_path / "results")
    rng = random.Random(int(os.environ.get("OOMLAB_FAULT_SEED", "16")))
    for moment in range(5):
        before = _records(results)
        process = start(["run", "alloc", *SLOW_TASKS, "--results", results])
        if moment == 4:  # one at least after its record is written, however slow this machine's start
            new = lambda known=before: _records(results) - known  # noqa: E731
            assert proc.wait_until(new, 60 * TIME_SCALE, 0.05), "the run wrote no record"
            time.sleep(rng.uniform(0.0, 2.0))
        else:
            time.sleep(rng.uniform(0.2, 5.0))  # before, during or after the worker's start
        process.kill()
        process.wait()
    killed_ids = {os.path.basename(d) for d in glob.glob(os.path.join(results, "*")) if os.path.isdir(d)}
    swept = clean_run(results)
    for record in records_are_final(results):
        if record["run_id"] in killed_ids:
            assert record["status"] in ("killed", "complete"), record.get("message")
            if record["status"] == "killed":
                assert "next run's sweep" in record["message"]
    for run_id in killed_ids | {swept["run_id"]}:
        assert_nothing_left(run_id)
    assert any("marked killed" in item for item in swept["environment"]["cleaned_up_after_previous_runs"])


def test_redis_queue_unacked_and_bindings_really_deleted(tmp_path):
    results = str(tmp_path / "results")
    process = start(["run", "alloc", *SLOW_TASKS, "--broker", REDIS, "--results", results])
    run_dir = wait_for_tasks_running(results)
    run_id = os.path.basename(run_dir)
    process.kill()
    process.wait()
    assert redis_keys_naming(REDIS, run_id), "a SIGKILLed run leaves its queue, bindings and unacked entries"
    decoy = plant_another_runs_queue(REDIS)
    clean_run(results)
    assert redis_keys_naming(REDIS, run_id) == []
    assert redis_keys_naming(REDIS, decoy) != [], "another run's queue on the same broker is left alone"
    cleanup_decoy(REDIS, decoy)
    finished = subprocess.run(
        oomlab_cmd("run", "alloc", "--tasks", "2", "--param", "over=0", "--broker", REDIS, "--results", results),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr
    run_id = os.path.basename(finished.stdout.strip().splitlines()[-1])
    assert redis_keys_naming(REDIS, run_id) == [], "a finished run leaves nothing on the broker"


def plant_another_runs_queue(url: str) -> str:
    """A queue, binding and unacked entry of a run that is still alive elsewhere (no lease of ours)."""
    import redis

    name = f"decoy-{os.getpid()}-{random.randrange(1 << 30)}"
    client = redis.Redis.from_url(url)
    client.rpush(f"oomlab.{name}", "message")
    client.sadd(f"_kombu.binding.oomlab.{name}", f"oomlab.{name}\x06\x16\x06\x16oomlab.{name}")
    client.hset("unacked", f"tag-{name}", json.dumps([{}, f"oomlab.{name}", f"oomlab.{name}"]))
    return name


def cleanup_decoy(url: str, name: str) -> None:
    from oomlab.worker.broker_cleanup import delete_run_queue

    assert delete_run_queue(url, f"oomlab.{name}")
    assert redis_keys_naming(url, name) == []


def rabbitmq_names(what: str) -> list[str]:
    listed = subprocess.run(["rabbitmqctl", "-q", what, "name"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.split()


def test_rabbitmq_sigkilled_runs_queue_and_exchange_swept(tmp_path):
    results = str(tmp_path / "results")
    argv = ["run", "alloc", *SLOW_TASKS, "--broker", AMQP, "--result-backend", REDIS, "--results", results]
    process = start(argv)
    queue = "oomlab." + os.path.basename(wait_for_tasks_running(results))
    assert queue in rabbitmq_names("list_exchanges"), "declaring the queue made a durable exchange"
    process.kill()
    process.wait()
    clean_run(results)  # the run's janitor (a password-protected broker) or this sweep deletes both
    assert queue not in rabbitmq_names("list_queues")
    assert queue not in rabbitmq_names("list_exchanges")


def test_rabbitmq_queue_and_exchange_deleted(tmp_path):
    results = str(tmp_path / "results")
    argv = ["run", "alloc", "--tasks", "2", "--param", "over=0", "--broker", AMQP, "--result-backend", REDIS]
    done = subprocess.run(oomlab_cmd(*argv, "--results", results), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    queue = "oomlab." + os.path.basename(done.stdout.strip().splitlines()[-1])
    for what in ("list_queues", "list_exchanges"):
        assert queue not in rabbitmq_names(what), f"{queue} left in {what}"


def private_redis(port: int, directory: str) -> subprocess.Popen:
    from oomlab.worker.broker import redis_server_binary

    argv = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", directory]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise AssertionError("the private redis-server did not start")


@pytest.mark.parametrize("role", ["broker", "result backend"])
def test_redis_restarted_mid_run(tmp_path, role):
    """A private redis-server (the machine's service is shared) killed and started again under the run."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    results = str(tmp_path / "results")
    servers = [private_redis(port, str(tmp_path))]
    urls = ["--broker", url] if role == "broker" else ["--broker", REDIS, "--result-backend", url]
    process = start(["run", "alloc", *SLOW_TASKS, *urls, "--timeout", "25", "--results", results])
    try:
        run_dir = wait_for_tasks_running(results)
        servers[0].kill()
        servers[0].wait()
        time.sleep(1.0)
        servers.append(private_redis(port, str(tmp_path)))
        _, err = process.communicate(timeout=120)
        assert process.returncode in DOCUMENTED, err
        assert "Traceback" not in err and "internal error" not in err, err
        run_id = os.path.basename(run_dir)
        records_are_final(results)
        clean_run(results)
        assert_nothing_left(run_id)
        assert redis_keys_naming(url, run_id) == []
    finally:  # the test's own servers never outlive it, whatever failed
        if process.poll() is None:
            process.kill()
        for server in servers:
            server.kill()
            server.wait()


def test_rabbitmq_restarted_mid_run(tmp_path):
    """A private RabbitMQ node (the machine's service is shared) stopped and started again under the run."""
    node = new_node(str(tmp_path / "rabbit"))
    results = str(tmp_path / "results")
    try:
        node.start()
        # --timeout with room for Celery's reconnect backoff (2 s, 4 s, 6 s...: a node that takes a few
        # seconds to come back costs a third retry) and the 4 tasks of 4 s each after it
        argv = ["run", "alloc", *SLOW_TASKS, "--broker", node.url, "--result-backend", REDIS, "--timeout", "60"]
        process = start([*argv, "--results", results])
        try:
            run_dir = wait_for_tasks_running(results)
            node.stop()
            node.start()
            _, err = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
        assert "Traceback" not in err and "internal error" not in err, err
        run_id = os.path.basename(run_dir)
        # Celery reconnects (the worker's consumer restarts; the durable queue kept the messages): the
        # run completes, every task once, exit 0. The worker's log shows the broker really went away.
        assert process.returncode == 0, err
        (record,) = records_are_final(results)
        assert record["status"] == "complete" and record["summary"]["outcomes"]["succeeded"] == 4, record
        with open(os.path.join(run_dir, "worker.log"), errors="replace") as handle:
            assert "Connection to broker lost" in handle.read()
        clean_run(results)
        assert_nothing_left(run_id)
        for what in ("list_queues", "list_exchanges"):
            assert [name for name in node.names(what) if run_id in name] == [], f"{what} on the node names the run"
    finally:
        node.remove()
    assert node.processes() == [], "the private RabbitMQ node is still running"
    assert not os.path.exists(node.home), "the private node's directory was left"


def test_full_results_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(disk)], check=True)
    try:
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(b"\0" * (free - 60_000))  # room for the start of a run, not its end
        results = str(disk / "results")
        done = subprocess.run(
            oomlab_cmd("run", "alloc", *SLOW_TASKS, "--results", results), capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 10, done.stderr
        assert "No space left on device" in done.stderr and "Traceback" not in done.stderr
        run_id = next(name for name in os.listdir(results) if not name.startswith("."))
        (record,) = records_are_final(results)  # written in place, compact, when no copy fits
        assert record["status"] == "error" and "No space left on device" in record["message"]
        (disk / "filler").unlink()
        assert_nothing_left(run_id)
    finally:
        subprocess.run(["umount", str(disk)], check=True)
