"""Kills the pool children do not suffer themselves: a program a task started, OOM-killed inside the
agent's group (counted, logged and alerted with its task, the task left to handle it), and the
worker's main process killed at start under too small a limit (one line, the worker's exit code)."""

from __future__ import annotations

import subprocess
import time
import urllib.request

import pytest

from bench.agent_common import receiver
from tests.agent.conftest import agent_lines, locked_bytes, worker_command
from tests.agent.test_metrics import _free_port

pytestmark = [pytest.mark.integration, pytest.mark.services]


def test_a_program_a_task_started_is_reported_with_its_task_and_the_task_goes_on(agent_run):
    server, received = receiver()
    port = _free_port()
    try:
        with agent_run() as run:
            hook = f"http://127.0.0.1:{server.server_port}/hook"
            run.start("--memory", "256MiB", "--metrics", str(port), "--alert-webhook", hook)
            run.wait_ready()
            app = run.app()
            assert app.small.delay().get(timeout=30) == "ok"
            result = app.external.delay(400)
            assert result.get(timeout=60) == -9  # the task saw its program killed and returned
            assert app.small.delay().get(timeout=30) == "ok"
            deadline = time.monotonic() + 10
            while not received and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            assert result.state == "SUCCESS"  # the agent marked nothing: the task handled it
            assert len(received) == 1, received
            alert = received[0]
            assert alert["role"] == "descendant" and alert["cause"] == "oom" and alert["event"] == "oom_kill"
            assert alert["task"] == "user_app.external" and alert["id"] == result.id
            assert alert["parent_pid"] and alert["pid"] != alert["parent_pid"] and alert["program"]
            assert alert["group_bytes"] >= 0.97 * alert["limit_bytes"]
            said = [line for line in agent_lines(run.text()) if "started by task user_app.external" in line]
            assert len(said) == 1 and "not marked FAILURE" in said[0], run.text()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                text = response.read().decode()
            assert 'role="descendant",task="user_app.external"} 1.0' in text, text
            # every finished task's peak, not only a killed one's: two small tasks and the external one
            assert 'oomlab_task_peak_bytes_count{task="user_app.small"} 2.0' in text
            assert 'oomlab_task_peak_bytes_count{task="user_app.external"} 1.0' in text
            assert "pool child" not in "".join(line for line in text.splitlines() if "oom_kills_total" in line)
    finally:
        server.shutdown()


def test_a_main_process_killed_at_start_is_one_line_and_the_exit_code_stays(agent_run):
    with agent_run() as run:
        process = run.start("--memory", "64MiB", worker=worker_command("-c", "4", "-n", run.node))
        try:
            code = process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the worker ran under 64 MiB:\n{run.text()}") from None
        started, *said, summary = agent_lines(run.text())
        assert code == 137, run.text()
        assert started.startswith("oomlab agent: watching the worker (pid ") and len(said) == 1, run.text()
        assert "the worker's main process (pid" in said[0] and "killed by the kernel's OOM killer" in said[0]
        assert "limit 64.0 MiB" in said[0] and "its RSS at the kill" in said[0] and said[0].endswith("exits with 137")
        assert summary.startswith("oomlab agent: the worker exited with 137 after ") and summary.endswith(
            "; 1 kill(s) seen"
        ), summary


def test_a_killed_main_process_leaves_no_temp_dir(agent_run):
    """The worker's TMPDIR is the agent's own 0700 directory, removed when the worker exits: billiard's
    pymp-* directories would otherwise outlive a main process killed by SIGKILL."""
    import os
    import signal
    import stat

    import psutil
    from oomlab.worker.temp_dir import PREFIX

    with agent_run() as run:
        process = run.start(worker=worker_command("-n", run.node))
        run.wait_ready()
        (worker,) = psutil.Process(process.pid).children()
        tmp = worker.environ()["TMPDIR"]
        assert stat.S_IMODE(os.stat(tmp).st_mode) == 0o700 and os.path.basename(tmp).startswith(PREFIX)
        assert run.app().small.delay().get(timeout=30) == "ok"  # ready: its app line read, and acted on
        # no --memory: the agent shares its own group with the worker, and locks its code only under a limit
        memcg = next(
            line.split(":", 2)[2].strip() for line in open(f"/proc/{process.pid}/cgroup") if ":memory:" in line
        )
        limited = int(open(f"/sys/fs/cgroup/memory{memcg}/memory.limit_in_bytes").read()) < 1 << 60
        assert (locked_bytes(process.pid) > 0) == limited
        os.kill(worker.pid, signal.SIGKILL)
        assert process.wait(timeout=60) == 137, run.text()
        assert not os.path.exists(tmp)


def test_a_sigkilled_agent_leaves_its_workers_temp_dir_to_the_sweep(agent_run, tmp_path, monkeypatch):
    """The agent SIGKILLed removes nothing: its worker's TMPDIR (billiard's pymp-*) stays while that
    worker runs on, leased to it, and the sweep (the next agent's, `oomlab worker`'s or run's) removes
    it once the worker is gone too."""
    import os
    import signal

    import psutil
    from oomlab.worker.leftovers import sweep_stale

    state, user_tmp = tmp_path / "state", tmp_path / "tmp"
    user_tmp.mkdir()
    monkeypatch.setenv("OOMLAB_STATE_DIR", str(state))  # no other run's sweep acts meanwhile
    with agent_run() as run:
        run.env.update(OOMLAB_STATE_DIR=str(state), TMPDIR=str(user_tmp))
        process = run.start(worker=worker_command("-n", run.node))
        run.wait_ready()
        (worker,) = psutil.Process(process.pid).children()
        (tmp,) = user_tmp.iterdir()
        assert str(tmp) == worker.environ()["TMPDIR"] and list(tmp.glob("pymp-*")), list(tmp.iterdir())
        family = [worker, *worker.children(recursive=True)]
        process.kill()
        process.wait()
        assert sweep_stale() == [] and tmp.exists(), "the sweep took the TMPDIR of a worker still running"
        for member in family:
            member.send_signal(signal.SIGKILL)
        psutil.wait_procs(family, timeout=10)
        assert tmp.exists(), "nothing but the sweep removes it (else this test proves nothing)"
        assert str(tmp) in sweep_stale()
    assert not any(user_tmp.iterdir()) and os.listdir(state) == []


def test_a_sigkilled_agent_leaves_its_workers_memory_cgroup_to_the_sweep(agent_run, tmp_path, monkeypatch):
    """--memory's cgroup (and the leaves the pool children made) is leased like the TMPDIR: kept by
    every sweep while the orphaned worker runs in it, removed by the next sweep once nothing is in it."""
    import glob
    import os
    import signal

    import psutil
    from oomlab.worker.leftovers import TEMP_DIR_LEASE, sweep_stale
    from oomlab.worker.limits import open_cgroup_backend

    def pids_of(path: str) -> list[int]:
        with open(os.path.join(path, "cgroup.procs")) as handle:
            return [int(pid) for pid in handle.read().split()]

    state = tmp_path / "state"
    monkeypatch.setenv("OOMLAB_STATE_DIR", str(state))  # no other run's sweep acts meanwhile
    with agent_run() as run:
        run.env.update(OOMLAB_STATE_DIR=str(state))
        process = run.start("--memory", "256MiB", worker=worker_command("-c", "2", "-n", run.node))
        run.wait_ready()
        (worker,) = psutil.Process(process.pid).children()
        family = [worker, *worker.children(recursive=True)]
        (group,) = [
            path for path in glob.glob(f"{open_cgroup_backend('x').parent}/agent-*") if worker.pid in pids_of(path)
        ]
        assert any(name.startswith("leaf-") for name in os.listdir(group)), os.listdir(group)
        process.kill()
        process.wait()
        assert sweep_stale(prefix=TEMP_DIR_LEASE) == [] and sweep_stale() == []
        assert os.path.isdir(group), "a sweep took the cgroup of a worker still running in it"
        for member in family:
            member.send_signal(signal.SIGKILL)
        psutil.wait_procs(family, timeout=10)
        assert os.path.isdir(group), "nothing but the sweep removes it (else this test proves nothing)"
        assert f"cgroup {group}" in sweep_stale(prefix=TEMP_DIR_LEASE)
        assert not os.path.exists(group) and os.listdir(state) == []
