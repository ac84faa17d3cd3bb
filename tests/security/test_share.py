"""`oomlab worker --share DIR` / `oomlab run --attach DIR`: the share is data from someone else. A share
another user can write is refused, worker.json never chooses the code the attached run imports, and
no file in the share is opened through a symlink."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from dataclasses import asdict

import pytest
from oomlab.worker import proc
from oomlab.worker.limits import open_cgroup_backend
from oomlab.worker.share import WorkerShare

from tests.conftest import TIME_SCALE, oomlab_cmd
from tests.security.conftest import secret_file

MIB = 1 << 20
HOSTNAME = "oomlab-worker-alloc@planted"
EVIL = 'open({marker!r}, "w").write("imported")  # what an attacker gets to run as root\napp = plan = None\n'


def worker_json(scenario: str, pid: int, **overrides) -> str:
    share = WorkerShare(
        scenario=scenario,
        variant="default",
        params={},
        concurrency=1,
        pool="prefork",
        broker="redis://127.0.0.1:6379/0",
        result_backend="redis://127.0.0.1:6379/0",
        queue="oomlab.planted",
        hostname=HOSTNAME,
        pid=pid,
        cgroup_dir="/sys/fs/cgroup",
        cgroup_path="/",
        cgroup_version=2,
    )
    return json.dumps({**asdict(share), **overrides})


@pytest.fixture
def lookalike(spawn_as):
    """A process whose command line names HOSTNAME, as the share's worker's would: worker.json's pid
    then passes for a live worker (its owner given to the factory)."""
    return lambda uid=0, gid=0: spawn_as([HOSTNAME, "300"], uid, gid, executable="/bin/sleep")


def test_a_share_another_user_can_write_is_refused_before_anything_in_it_runs(
    oomlab, public_tmp, other_user, lookalike
):
    share = public_tmp / "share"
    share.mkdir()
    os.chown(share, other_user.uid, other_user.gid)
    marker = public_tmp / "imported"
    evil = share / "evil.py"
    other_user.write(str(evil), EVIL.format(marker=str(marker)))
    worker = lookalike(other_user.uid, other_user.gid)
    other_user.write(str(share / "worker.json"), worker_json(str(evil), worker.pid))
    result = oomlab("run", "alloc", "--attach", str(share), "--start-timeout", "3")
    assert not marker.exists(), "oomlab imported the scenario a share of another user's named"
    assert result.code == 3, result.stderr
    assert result.stderr.count("\n") == 1 and "refusing the share directory" in result.stderr
    assert f"belongs to uid {other_user.uid}" in result.stderr


@pytest.mark.parametrize("file_name", ["evil.py", "alloc.py"])
def test_worker_json_never_chooses_the_code_the_attached_run_imports(oomlab, tmp_path, lookalike, file_name):
    """A share of the user's own, whose worker side (another container, as root there) names a file of
    its choosing, even one called like the run's own scenario: the run imports only its own."""
    share = tmp_path / "share"
    share.mkdir(mode=0o700)
    marker = tmp_path / "imported"
    evil = share / file_name
    evil.write_text(EVIL.format(marker=str(marker)))
    (share / "worker.json").write_text(worker_json(str(evil), lookalike().pid))
    result = oomlab("run", "alloc", "--attach", str(share), "--start-timeout", "3")
    assert not marker.exists(), "oomlab imported the scenario file worker.json named"
    assert result.code == 2 and result.stderr.strip() == f"oomlab: the worker in {share} runs {evil}, not alloc"


def test_worker_json_cannot_make_the_client_unpickle(oomlab, tmp_path, lookalike):
    share = tmp_path / "share"
    share.mkdir(mode=0o700)
    planted = worker_json("alloc", lookalike().pid, celery_conf={"accept_content": ["json", "pickle"]})
    (share / "worker.json").write_text(planted)
    result = oomlab("run", "alloc", "--attach", str(share), "--start-timeout", "3")
    assert result.code == 3 and "refusing the Celery setting accept_content" in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_worker_json_that_is_a_fifo_is_one_sentence_at_once(oomlab, tmp_path):
    """Opened blocking, a FIFO as worker.json held the run past --start-timeout and SIGTERM."""
    share = tmp_path / "share"
    share.mkdir(mode=0o700)
    os.mkfifo(share / "worker.json", 0o600)
    started = time.monotonic()
    result = oomlab("run", "alloc", "--attach", str(share), "--start-timeout", "3", timeout=30)
    assert result.code == 2 and "worker.json: it is a FIFO" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and time.monotonic() - started < 20 * TIME_SCALE


def _plant_links(share, tmp_path) -> dict[str, str]:
    """worker.log, worker.json.tmp and probe.jsonl as symlinks to root's 0600 files: {target: its text}."""
    planted = {}
    for name in ("worker.log", "worker.json.tmp", "probe.jsonl"):
        target = str(tmp_path / f"target-{name}")
        planted[target] = secret_file(target, f"root's secret behind {name}\n")
        os.symlink(target, share / name)
    return planted


def _assert_untouched(planted: dict[str, str]) -> None:
    for target, text in planted.items():
        with open(target) as handle:
            assert handle.read() == text, f"{target} was written through a symlink"
        assert os.stat(target).st_mode & 0o777 == 0o600


def test_a_share_worker_refuses_a_directory_another_user_can_write(oomlab, public_tmp, other_user, private_redis):
    share = public_tmp / "share"
    share.mkdir()
    os.chown(share, other_user.uid, other_user.gid)
    planted = {}
    for name in ("worker.log", "worker.json.tmp", "probe.jsonl"):
        target = str(public_tmp / f"target-{name}")
        planted[target] = secret_file(target, f"root's secret behind {name}\n")
        other_user.symlink(target, str(share / name))
    result = oomlab("worker", "alloc", "--share", str(share), "--broker", private_redis, timeout=60)
    assert result.code == 3 and "refusing the share directory" in result.stderr, result.stderr
    _assert_untouched(planted)


@pytest.mark.integration
def test_share_files_are_never_opened_through_a_symlink(oomlab, tmp_path, private_redis):
    """Symlinks planted in a share of root's own (by the worker's side of a Compose volume): the
    worker replaces them instead of writing through them, and an attached run refuses a share whose
    probe record is one instead of copying root's file into its run directory."""
    share = tmp_path / "share"
    share.mkdir(mode=0o700)
    planted = _plant_links(share, tmp_path)
    tag = secrets.token_hex(4)
    group = open_cgroup_backend(f"trust-test-{tag}")
    group.create(256 * MIB, "process")
    worker = None
    try:
        argv = ("worker", "alloc", "--share", str(share), "--broker", private_redis, "--concurrency", "1")
        worker = proc.spawn(
            oomlab_cmd(*argv, "--queue", f"oomlab.trust-{tag}"),
            log_path=str(tmp_path / "worker.out"),
            join_cgroup=group.procs_file,
        )
        assert proc.wait_until(lambda: os.path.exists(share / "worker.json"), 30 * TIME_SCALE), "no worker.json"
        time.sleep(2 * TIME_SCALE)  # the worker's logging is set up: worker.log has been opened
        _assert_untouched(planted)
        for name in ("worker.log", "probe.jsonl", "worker.json"):
            assert not os.path.islink(share / name) and os.stat(share / name).st_mode & 0o777 == 0o600
        # the worker side swaps its probe record for a link to root's file
        os.unlink(share / "probe.jsonl")
        os.symlink(tmp_path / "target-probe.jsonl", share / "probe.jsonl")
        results = tmp_path / "results"
        attached = oomlab("run", "alloc", "--attach", str(share), "--tasks", "1", "--timeout", "10", timeout=90)
        assert attached.code == 3 and "its probe.jsonl is a symbolic link" in attached.stderr, attached.stderr
        for directory, _, files in os.walk(results):
            for name in files:
                path = os.path.join(directory, name)
                with open(path, errors="replace") as handle:
                    assert "root's secret" not in handle.read(), f"{path} holds a copy of root's file"
                assert os.stat(path).st_mode & 0o077 == 0, f"{path} can be read by others"
        _assert_untouched(planted)
    finally:
        if worker is not None:

            def kill_group() -> None:
                group.kill_all()

            proc.stop(worker, grace=3.0, on_timeout=kill_group)
        group.remove()


def _fifo_in_place_of(path) -> None:
    os.unlink(path)
    os.mkfifo(path, 0o600)


@pytest.mark.integration
def test_fifos_in_a_share_never_hold_the_attached_run(oomlab, tmp_path, private_redis):
    """The worker's side puts FIFOs where its probe record and log were: before the attach they are
    refused in one sentence; swapped in mid-run (and the worker then gone, so its log is read for
    Celery's last word) the run still ends by itself, since neither is ever opened blocking."""
    share = tmp_path / "share"
    share.mkdir(mode=0o700)
    tag = secrets.token_hex(4)
    group = open_cgroup_backend(f"trust-test-{tag}")
    group.create(256 * MIB, "process")
    worker = attached = None
    try:
        argv = ("worker", "alloc", "--share", str(share), "--broker", private_redis, "--concurrency", "1")
        argv += ("--param", "hold=2", "--param", "over=0", "--queue", f"oomlab.trust-{tag}")
        worker = proc.spawn(oomlab_cmd(*argv), log_path=str(tmp_path / "worker.out"), join_cgroup=group.procs_file)
        assert proc.wait_until(lambda: os.path.exists(share / "worker.json"), 30 * TIME_SCALE), "no worker.json"
        time.sleep(2 * TIME_SCALE)
        probe = (share / "probe.jsonl").read_bytes()
        _fifo_in_place_of(share / "probe.jsonl")
        refused = oomlab("run", "alloc", "--attach", str(share), "--tasks", "1", timeout=60)
        assert refused.code == 3 and "its probe.jsonl is not a regular file" in refused.stderr, refused.stderr
        assert refused.stderr.count("\n") == 1
        os.unlink(share / "probe.jsonl")
        (share / "probe.jsonl").write_bytes(probe)

        results = tmp_path / "results"
        run = ("run", "alloc", "--attach", str(share), "--tasks", "6", "--timeout", "60", "--results", str(results))
        attached = subprocess.Popen(oomlab_cmd(*run), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.wait_until(lambda: list(results.glob("*/run.json")), 30 * TIME_SCALE), "the run did not start"
        time.sleep(3 * TIME_SCALE)  # a task or two done, the probe record read since the attach
        for name in ("probe.jsonl", "worker.log"):
            _fifo_in_place_of(share / name)
        time.sleep(1 * TIME_SCALE)
        group.kill_all()  # the worker gone: the run reads its log for Celery's last word
        try:
            _out, err = attached.communicate(timeout=90 * TIME_SCALE)
        except subprocess.TimeoutExpired:
            raise AssertionError("the attached run hung on a FIFO in the share") from None
        assert attached.returncode in (0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), err
        assert "Traceback" not in err and "internal error" not in err, err
    finally:
        if attached is not None and attached.poll() is None:
            attached.kill()
            attached.wait()
        if worker is not None:

            def kill_group() -> None:
                group.kill_all()

            proc.stop(worker, grace=3.0, on_timeout=kill_group)
        group.remove()
