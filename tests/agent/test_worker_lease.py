"""The worker's lease (its TMPDIR, --memory's cgroup) names the worker from its fork on: an agent
SIGKILLed before its own hand-over must not leave a lease that names only itself, which the next
sweep would take for stale while the worker runs."""

from __future__ import annotations

from oomlab.agent import worker_process
from oomlab.worker.leftovers import read_lease, sweep_stale
from oomlab.worker.temp_dir import hand_over_in_child, leased_temp_dir, release_temp_dir


def test_the_lease_names_the_worker_before_its_starter_hands_it_over(tmp_path, monkeypatch):
    monkeypatch.setenv("OOMLAB_STATE_DIR", str(tmp_path / "state"))
    tmp, lease = leased_temp_dir()
    assert lease is not None
    ours, theirs = worker_process.probe_socket()
    process = worker_process.start(["sleep", "30"], theirs, {}, None, lambda: hand_over_in_child(lease))
    try:
        theirs.close()
        saved = read_lease(lease.file)  # the starter's own hand_over not yet made: as if killed here
        assert saved is not None and saved.owner_pid == process.pid and saved.in_use()
        assert sweep_stale() == [] and (tmp_path / "state" / f"{lease.run_id}.json").exists()
    finally:
        process.kill()
        process.wait()
        ours.close()
    assert tmp in sweep_stale()
    release_temp_dir(tmp, lease)
