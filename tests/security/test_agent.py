"""`oomlab agent` as root wraps the production worker: the worker starts in the agent's working
directory, where Celery imports first, and the agent adds a name of its own to what is imported (the
probe's loader, `oomlab.probe...`); so a working directory another user can write is refused (exit 3),
as is one Celery would change to first (`--workdir`, CELERY_WORKDIR), and the worker gets
PYTHONSAFEPATH=1. A --metrics port another local user took does not keep the
worker from starting: said on stderr, the worker runs without metrics."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import psutil
import pytest

from tests.agent.conftest import AgentRun, worker_command

PLANTED = 'open({marker!r}, "a").write("imported as " + __name__ + "\\n")  # root, if ever imported\n'
LISTEN = "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(300)"


def _stop_all(process: subprocess.Popen) -> None:
    """The agent and its worker (in a session of its own, so not reached through the agent)."""
    try:
        family = [process.pid, *(c.pid for c in psutil.Process(process.pid).children(recursive=True))]
    except psutil.NoSuchProcess:
        family = []
    for pid in family:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    process.wait()


def _planted_folder(public_tmp, other_user):
    """A sticky /tmp-like folder everybody can write, where the other user planted an `oomlab/` whose
    every module writes `imported` beside it: (the folder, the marker)."""
    shared = public_tmp / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    marker = shared / "imported"
    other_user.run("mkdir", str(shared / "oomlab"))
    other_user.run("mkdir", str(shared / "oomlab" / "probe"))
    for name in ("__init__.py", "probe/__init__.py", "probe/loader.py"):
        other_user.write(str(shared / "oomlab" / name), PLANTED.format(marker=str(marker)))
    return shared, marker


def _agent_refuses(tmp_path, cwd, worker: list[str], expected: str, env: dict | None = None) -> None:
    """The agent exits 3 with one line saying `expected`, having started nothing."""
    env = {
        **AgentRun(tmp_path).env,
        "AGENT_TEST_BROKER": "memory://",
        "AGENT_TEST_BACKEND": "cache+memory://",
        **(env or {}),
    }
    log = tmp_path / "agent.log"
    with open(log, "wb") as out:
        agent = subprocess.Popen(
            [sys.executable, "-P", "-m", "oomlab", "agent", "--", *worker],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        code = agent.wait(timeout=30)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        _stop_all(agent)
    text = log.read_text()
    assert code == 3, text
    assert text.count("\n") == 1 and expected in text, text


def test_an_agent_started_where_another_user_can_write_is_refused(public_tmp, other_user, tmp_path):
    shared, marker = _planted_folder(public_tmp, other_user)
    _agent_refuses(tmp_path, shared, worker_command(), "refusing the working directory the worker would start in")
    assert not marker.exists(), f"the agent's worker imported the planted package: {marker.read_text()}"


@pytest.mark.parametrize("form", ["--workdir DIR", "--workdir=DIR", "CELERY_WORKDIR=DIR"])
def test_a_celery_workdir_another_user_can_write_is_refused(public_tmp, other_user, tmp_path, form):
    """Celery changes to --workdir (or CELERY_WORKDIR, click's variable for it) before it imports the
    app and the probe's loader: the agent's own working directory being trusted is not enough."""
    shared, marker = _planted_folder(public_tmp, other_user)
    command, env = worker_command(), {}
    if form == "--workdir DIR":
        command[3:3] = ["--workdir", str(shared)]  # python -m celery --workdir DIR -A user_app worker ...
    elif form == "--workdir=DIR":
        command[3:3] = [f"--workdir={shared}"]
    else:
        env["CELERY_WORKDIR"] = str(shared)
    _agent_refuses(tmp_path, tmp_path, command, f"refusing the --workdir the worker would change to {shared}", env)
    assert not marker.exists(), f"the agent's worker imported the planted package: {marker.read_text()}"


@pytest.mark.integration
@pytest.mark.services
def test_a_metrics_port_another_user_took_leaves_the_worker_running_without_metrics(other_user, spawn_as, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listener = spawn_as(["/usr/bin/python3", "-c", LISTEN, str(port)], other_user.uid, other_user.gid)
    deadline = time.monotonic() + 10
    while not any(c.laddr and c.laddr.port == port for c in psutil.Process(listener.pid).net_connections()):
        assert time.monotonic() < deadline, "the other user's listener did not bind"
        time.sleep(0.05)
    run = AgentRun(tmp_path)
    try:
        run.start("--metrics", str(port))
        run.wait_ready()
        worker = psutil.Process(run.process.pid).children()[0]
        assert worker.environ().get("PYTHONSAFEPATH") == "1"
        text = run.text()
        assert f"oomlab agent: --metrics 127.0.0.1:{port} is in use by another program" in text, text
        assert "the worker starts without metrics" in text
        assert run.stop() == 0
    finally:
        run.stop()
        run.cleanup()


def _replay_app_proj(cwd) -> subprocess.CompletedProcess:
    """`oomlab replay --app proj` as root, started in `cwd`."""
    return subprocess.run(
        [sys.executable, "-P", "-m", "oomlab", "replay", "--redis", "redis://127.0.0.1:6379/15", "--app", "proj"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.services
def test_replay_refuses_to_import_its_app_from_a_directory_another_user_can_write(public_tmp, other_user, tmp_path):
    """`oomlab replay --app NAME` imports NAME as `celery -A` does, from the working directory first."""
    shared, marker = _planted_folder(public_tmp, other_user)
    other_user.write(str(shared / "proj.py"), PLANTED.format(marker=str(marker)))
    done = _replay_app_proj(shared)
    assert done.returncode == 3, done.stderr
    assert f"refusing the working directory --app proj would be imported from {shared}" in done.stderr, done.stderr
    assert not marker.exists(), f"replay imported the planted module: {marker.read_text()}"


def _their_package_in_a_trusted_folder(public_tmp, other_user):
    """public_tmp is root's, 0755 (trusted); the package `proj` in it is the other user's: a checkout
    in /srv, a home under /home. (the folder, the marker)."""
    marker = public_tmp / "imported"
    (public_tmp / "proj").mkdir()
    os.chown(public_tmp / "proj", other_user.uid, other_user.gid)
    other_user.write(str(public_tmp / "proj" / "__init__.py"), PLANTED.format(marker=str(marker)))
    return public_tmp, marker


@pytest.mark.services
def test_replay_refuses_another_users_package_in_a_trusted_working_directory(public_tmp, other_user):
    folder, marker = _their_package_in_a_trusted_folder(public_tmp, other_user)
    done = _replay_app_proj(folder)
    assert done.returncode == 3, done.stderr
    said = f"refusing to import --app proj from {folder}: {folder / 'proj'}: it belongs to uid {other_user.uid}"
    assert said in done.stderr, done.stderr
    assert not marker.exists(), f"replay imported the other user's package: {marker.read_text()}"


def test_the_agent_refuses_another_users_package_as_the_workers_app(public_tmp, other_user, tmp_path):
    folder, marker = _their_package_in_a_trusted_folder(public_tmp, other_user)
    command = [sys.executable, "-m", "celery", "-A", "proj", "worker", "-c", "1"]
    _agent_refuses(tmp_path, folder, command, f"refusing to import the worker's app proj from {folder}")
    assert not marker.exists(), f"the agent's worker imported the other user's package: {marker.read_text()}"
