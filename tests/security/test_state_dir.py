"""The state directory holds the leases the sweep acts on (it SIGKILLs the processes and deletes the
paths a stale lease names): one another user made, or can write, is refused, and nothing in it is
acted on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from oomlab.errors import NoPermission
from oomlab.probe.procfs import start_time_ticks
from oomlab.worker.leftovers import Lease, state_dir, sweep_stale


def planted_lease(victim_pid: int, victim_dir: str) -> str:
    gone = subprocess.Popen(["true"])
    gone.wait()  # a finished process: the lease's owner is dead, so the lease looks stale
    lease = Lease(
        run_id="planted",
        owner_pid=gone.pid,
        owner_start=1,
        processes=[(victim_pid, start_time_ticks(victim_pid))],
        paths=[victim_dir],
    )
    return json.dumps(
        {**lease.__dict__, "processes": [list(p) for p in lease.processes], "queues": [], "containers": []}
    )


@pytest.fixture
def sleeper(spawn_as):
    """A live process (root's, or the given user's) that a planted lease names."""
    return lambda uid=0, gid=0: spawn_as(["sleep", "300"], uid, gid)


def test_a_run_refuses_a_state_directory_of_another_users(oomlab, public_tmp, other_user, sleeper):
    state = public_tmp / "state"
    state.mkdir(mode=0o700)
    os.chown(state, other_user.uid, other_user.gid)
    victim_dir = public_tmp / "precious"
    victim_dir.mkdir()
    (victim_dir / "data").write_text("keep me")
    process = sleeper()  # root's
    other_user.write(str(state / "planted.json"), planted_lease(process.pid, str(victim_dir)))
    result = oomlab("run", "alloc", "--tasks", "1", env={"OOMLAB_STATE_DIR": str(state)})
    assert process.poll() is None, "the run killed a process a planted lease named"
    assert (victim_dir / "data").read_text() == "keep me", "the run deleted a directory a planted lease named"
    assert result.code == 3, result.stderr
    assert result.stderr.count("\n") == 1 and "refusing the state directory" in result.stderr
    assert not os.path.exists(public_tmp / "results") or not [
        n for n in os.listdir(public_tmp / "results") if not n.startswith(".")
    ]


def test_a_state_directory_others_can_write_is_refused(tmp_path, monkeypatch):
    shared = tmp_path / "state"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # sticky and world-writable, as /tmp: still not a place to act on
    monkeypatch.setenv("OOMLAB_STATE_DIR", str(shared))
    with pytest.raises(NoPermission, match="other users can write to it"):
        state_dir()
    with pytest.raises(NoPermission):
        sweep_stale()


def test_the_default_state_directory_of_a_user_without_xdg_runtime_dir_is_checked(other_user, victim_user, sleeper):
    """A user whose runs go through sudo -u, cron or CI (no XDG_RUNTIME_DIR) keeps leases in
    /tmp/oomlab-UID/oomlab: another user who makes it first, with a lease naming the victim's process
    and directory, gets nothing from the victim's next sweep."""
    base = f"/tmp/oomlab-{victim_user.uid}"
    try:
        other_user.run("mkdir", "-p", f"{base}/oomlab")
        other_user.run("chmod", "-R", "0777", base)
        process = sleeper(victim_user.uid, victim_user.gid)
        victim_dir = f"{base}/precious"  # the victim's files, under the attacker's directory
        os.makedirs(victim_dir)
        os.chown(victim_dir, victim_user.uid, victim_user.gid)
        other_user.write(f"{base}/oomlab/planted.json", planted_lease(process.pid, victim_dir))
        child = os.fork()
        if child == 0:  # the victim's sweep, with the victim's rights and environment
            code = 1
            try:
                os.setgid(victim_user.gid)
                os.setuid(victim_user.uid)
                os.environ.pop("XDG_RUNTIME_DIR", None)
                os.environ.pop("OOMLAB_STATE_DIR", None)
                sweep_stale()
                code = 0
            except NoPermission:
                code = 3
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        assert process.poll() is None, "the victim's sweep killed the process a planted lease named"
        assert os.path.isdir(victim_dir), "the victim's sweep deleted the directory a planted lease named"
        assert os.waitstatus_to_exitcode(status) == 3, "the sweep did not refuse the other user's directory"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_lease_file_that_is_a_symlink_or_someone_elses_is_not_acted_on(tmp_path, monkeypatch, other_user, sleeper):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    monkeypatch.setenv("OOMLAB_STATE_DIR", str(state))
    victim_dir = tmp_path / "precious"
    victim_dir.mkdir()
    process = sleeper()
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(planted_lease(process.pid, str(victim_dir)))
    os.symlink(elsewhere, state / "linked.json")
    foreign = state / "foreign.json"
    foreign.write_text(planted_lease(process.pid, str(victim_dir)))
    os.chown(foreign, other_user.uid, other_user.gid)
    assert sweep_stale() == []
    assert process.poll() is None and victim_dir.is_dir()
