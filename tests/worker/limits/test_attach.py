"""`oomlab run --attach`: a worker oomlab did not start (`oomlab worker` in a group the test made, as
a Compose service's would be), measured through its own view of its group, and left running."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time

import pytest
from oomlab.worker import proc
from oomlab.worker.broker import redis_server_binary
from oomlab.worker.limits import open_cgroup_backend
from oomlab.worker.share import WorkerShare

from tests.conftest import TIME_SCALE, oomlab_cmd
from tests.worker.limits.test_cgroup_backend import MIB, assert_one_kill_and_exact_peaks, check_backend

pytestmark = pytest.mark.integration
# alloc's over-limit task is the fifth of every eight: with five it comes last, so a run ends on Celery's
# notice of the kill instead of waiting for the replaced child to run the rest (slow under emulation)
TASKS = "5"


def stale(share: str) -> None:
    """A worker.json whose pid (1) is not the worker here: one from another pid namespace, or left over."""
    WorkerShare(
        scenario="alloc",
        variant="default",
        params={},
        concurrency=1,
        pool="prefork",
        broker="redis://x",
        result_backend="redis://x",
        queue="q",
        hostname="oomlab-worker-alloc@elsewhere",
        pid=1,
        cgroup_dir="/sys/fs/cgroup",
        cgroup_path="/",
        cgroup_version=2,
    ).save(share)


@pytest.fixture
def shared_worker(tmp_path):
    """(share directory, worker process, its group): `oomlab worker alloc` with one child under a
    256 MiB limit, on a Redis of the test's own, with leases in a state directory of its own."""
    tag = secrets.token_hex(4)
    group = open_cgroup_backend(f"attach-test-{tag}")
    group.create(256 * MIB, "process")
    socket_path = str(tmp_path / "redis.sock")
    redis = subprocess.Popen(
        [redis_server_binary(), "--port", "0", "--unixsocket", socket_path, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    share = str(tmp_path / "share")
    os.makedirs(share)  # as a Compose volume is there before either service starts
    os.makedirs(tmp_path / "tmp")  # the user's TMPDIR, of which the worker must leave nothing behind
    stale(share)  # and holds the worker.json of the previous `up`: the run must wait for the new one
    worker = None
    try:
        assert proc.wait_until(lambda: os.path.exists(socket_path), 10 * TIME_SCALE), "redis did not start"
        worker = proc.spawn(
            oomlab_cmd(
                "worker",
                "alloc",
                "--share",
                share,
                "--broker",
                f"redis+socket://{socket_path}",
                "--concurrency",
                "1",
                "--param",
                "hold=0.1",
                "--queue",
                f"oomlab.attach-{tag}",
            ),
            log_path=str(tmp_path / "worker.log"),
            env={**os.environ, "TMPDIR": str(tmp_path / "tmp"), "OOMLAB_STATE_DIR": str(tmp_path / "state")},
            join_cgroup=group.procs_file,
        )
        yield share, worker, group
    finally:
        if worker is not None:
            proc.stop(worker, grace=3.0, on_timeout=group.kill_all)
        group.remove()
        redis.kill()
        redis.wait()


def test_an_attached_run_measures_a_worker_it_did_not_start_and_leaves_it_running(oomlab, shared_worker):
    share, worker, _ = shared_worker
    result = oomlab("run", "alloc", "--attach", share, "--tasks", TASKS)
    assert result.code == 0, result.stderr
    record = result.record
    check_backend(record)
    assert_one_kill_and_exact_peaks(record, result.run_dir)
    assert record["group"]["placement"] == "attached" and record["group"]["limit_bytes"] == 256 * MIB
    assert record["worker"]["pid"] == worker.pid and record["worker"]["attached"]["share"] == share
    assert record["config"]["concurrency"] == 1  # the worker's settings, from its share
    # Celery's notice of the dead child, from the worker's log in the share (its latency can be a hair
    # below 0 where the kill's time is inferred, from oomlab's own first sight of it)
    assert "celery_pool_noticed" in record["kills"][0]["detected"]
    for name in ("probe.jsonl", "worker.log"):  # copied into the run directory, which is then whole
        assert os.path.getsize(os.path.join(result.run_dir, name)) > 0
    time.sleep(0.5 * TIME_SCALE)
    assert worker.poll() is None, "oomlab stopped a worker it did not start"
    # again on the same worker: its probe holds the first run's tasks, the kill counter is 1 already
    again = oomlab("run", "alloc", "--attach", share, "--tasks", TASKS)
    assert again.code == 0, again.stderr
    assert_one_kill_and_exact_peaks(again.record, again.run_dir)
    assert again.record["group"]["oom_kill_count"] == 2 and worker.poll() is None


def test_a_shared_worker_killed_leaves_nothing_in_the_users_temp_directory(shared_worker, tmp_path):
    """billiard's pymp-* directory goes in a TMPDIR of the worker's own, not the user's: a worker
    SIGKILLed (which removes nothing itself) leaves nothing there once it and its pool child are gone."""
    _, worker, _ = shared_worker
    user_tmp, log = tmp_path / "tmp", tmp_path / "worker.log"
    assert proc.wait_until(lambda: " ready." in log.read_text(errors="replace"), 60 * TIME_SCALE), log.read_text()
    assert not list(user_tmp.glob("pymp-*")), "billiard's directory is in the user's TMPDIR"
    (own,) = user_tmp.iterdir()  # the worker's own, holding billiard's
    assert list(own.glob("pymp-*")), list(own.iterdir())
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    assert proc.wait_until(lambda: not any(user_tmp.iterdir()), 10 * TIME_SCALE), list(user_tmp.rglob("*"))


def test_a_shared_worker_killed_with_its_whole_group_leaves_nothing_after_the_sweep(
    shared_worker, tmp_path, monkeypatch
):
    """A kill of the worker's whole group (a group OOM kill, `docker kill` of a Compose service) takes
    the shell that would remove its TMPDIR along: the directory is leased to the worker, so the sweep
    (the next `oomlab worker`'s, agent's or run's) removes it, billiard's pymp-* with it."""
    from oomlab.worker.leftovers import sweep_stale

    _, worker, group = shared_worker
    user_tmp, log = tmp_path / "tmp", tmp_path / "worker.log"
    assert proc.wait_until(lambda: " ready." in log.read_text(errors="replace"), 60 * TIME_SCALE), log.read_text()
    (own,) = user_tmp.iterdir()
    assert list(own.glob("pymp-*")), list(own.iterdir())
    group.kill_all()
    worker.wait()
    assert proc.wait_until(lambda: not group.pids(), 10 * TIME_SCALE), "the group is not empty"
    assert own.exists(), "the group's kill left a remover alive (else this test proves nothing)"
    monkeypatch.setenv("OOMLAB_STATE_DIR", str(tmp_path / "state"))
    assert str(own) in sweep_stale()
    assert not any(user_tmp.iterdir()) and os.listdir(tmp_path / "state") == []


def test_the_workers_settings_are_not_given_twice(oomlab, tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    result = oomlab("run", "alloc", "--attach", str(share), "--memory", "1GiB")
    assert result.code == 2 and result.stderr.strip() == (
        "oomlab: --memory: with --attach these are the worker's; set them on `oomlab worker`"
    )
    missing = oomlab("run", "alloc", "--attach", str(tmp_path / "nowhere"))
    assert missing.code == 2 and "no such directory" in missing.stderr
    nobody = oomlab("run", "alloc", "--attach", str(share), "--start-timeout", "1")
    assert nobody.code == 4 and "no worker wrote" in nobody.stderr
    # a worker in another pid namespace: its pid (1 in its container) is some other process here
    stale(str(share))
    hidden = oomlab("run", "alloc", "--attach", str(share), "--start-timeout", "1")
    assert hidden.code == 3 and hidden.stderr.strip() == (
        "oomlab: the worker (pid 1 in its own view) is not visible here: run oomlab in the worker's pid namespace "
        "(Compose: pid: host on both services)"
    )
