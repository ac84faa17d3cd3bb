"""No password is written down: not in the run directory, not in a lease, not on the terminal; and
what a run writes is private (0700 directories, 0600 files)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time

import pytest
import redis
from oomlab.trust import python_argv
from oomlab.worker.leftovers import Lease

from tests.conftest import TIME_SCALE, oomlab_cmd, run_dir_from

REDIS = "127.0.0.1:6379"
SCENARIO = '''"""alloc, with parameters that hold secrets (a database URL, an API token)."""
from oomlab.config.scenario import Param
from oomlab.scenarios.alloc import DEFAULTS, app, plan  # noqa: F401
from oomlab.scenarios.alloc import PARAMS as ALLOC_PARAMS

description = "alloc with secrets"
PARAMS = [*ALLOC_PARAMS, Param("database_url", "", "a database"), Param("api_token", "", "a token")]
'''


@pytest.fixture
def redis_user():
    """(name, password) of a Redis ACL user made for the test: the service Redis has no password of
    its own (it refuses AUTH with one), so a user with one is how a URL gets a real password."""
    name, password = f"oomlab-{secrets.token_hex(4)}", f"pw{secrets.token_hex(12)}"
    client = redis.Redis.from_url(f"redis://{REDIS}/0", socket_connect_timeout=3)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"these tests need the Redis service at {REDIS}")
    client.acl_setuser(name, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"], commands=["+@all"])
    try:
        yield name, password
    finally:
        client.acl_deluser(name)
        client.close()


def _files_under(*roots: str):
    for root in roots:
        for directory, _dirs, files in os.walk(root):
            yield directory, True
            for name in files:
                yield os.path.join(directory, name), False


@pytest.mark.integration
@pytest.mark.services
def test_no_password_is_written_anywhere_and_results_are_private(tmp_path, redis_user):
    user, password = redis_user
    url = f"redis://{user}:{password}@{REDIS}/0"
    scenario = tmp_path / "scenarios" / "secretive.py"
    scenario.parent.mkdir()
    scenario.write_text(SCENARIO)
    results, state = tmp_path / "results", tmp_path / "state"
    state.mkdir(mode=0o700)
    argv = oomlab_cmd(
        "run",
        str(scenario),
        "--broker",
        url,
        "--tasks",
        "2",
        "--param",
        f"database_url=postgresql://oomlab:{password}@127.0.0.1:5432/test",
        "--param",
        f"api_token={password}",
        "--celery",
        f"redis_password={password}",
        "--results",
        str(results),
    )
    env = {**os.environ, "OOMLAB_STATE_DIR": str(state)}
    run = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    leases_seen = 0
    deadline = time.monotonic() + 150 * TIME_SCALE
    while run.poll() is None and time.monotonic() < deadline:  # the lease, while the run holds it
        for name in os.listdir(state):
            try:
                with open(state / name) as handle:
                    text = handle.read()
            except FileNotFoundError:
                continue
            leases_seen += '"queues": [["' in text
            assert password not in text, f"the lease {name} holds the broker's password"
        time.sleep(0.05)
    stdout, stderr = run.communicate(timeout=30)
    assert run.returncode == 0, stderr
    assert leases_seen, "no lease naming the run's queue was seen"
    assert password not in stdout and password not in stderr
    run_dir = run_dir_from(stdout)
    assert run_dir and os.path.dirname(run_dir) == str(results)
    for path, is_dir in _files_under(str(results), str(state)):
        mode = os.lstat(path).st_mode & 0o777
        assert mode == (0o700 if is_dir else 0o600), f"{path} is {mode:o}"
        if not is_dir:
            with open(path, "rb") as handle:
                assert password.encode() not in handle.read(), f"{path} holds the password"


@pytest.mark.services
def test_a_lease_keeps_no_password_and_the_sweep_still_deletes_the_queue(tmp_path, monkeypatch, redis_user):
    """The lease names the broker without its password; the sweep of a run given that broker's URL
    finds the password there, and one that was not leaves the queue in the lease for a later sweep."""
    user, password = redis_user
    url = f"redis://{user}:{password}@{REDIS}/0"
    monkeypatch.setenv("OOMLAB_STATE_DIR", str(tmp_path / "state"))
    queue = f"oomlab.trust-{secrets.token_hex(4)}"
    client = redis.Redis.from_url(url)
    client.rpush(queue, "a message of a SIGKILLed run")
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    lease = Lease(run_id="killed", owner_pid=gone.pid, owner_start=1)
    lease.add_queue(url, queue)
    with open(lease.file) as handle:
        assert password not in handle.read()
    assert os.stat(lease.file).st_mode & 0o777 == 0o600
    assert [janitor.process.args for janitor in lease.janitors] == [python_argv("-m", "oomlab.worker.janitor")]
    lease.janitors.pop().dismiss()  # a janitor killed along with its run: the sweep is what is left
    from oomlab.worker.leftovers import sweep_stale

    assert sweep_stale() == []  # no password at hand: nothing is deleted, the lease is kept
    assert os.path.exists(lease.file)
    assert sweep_stale(credentials=[url]) == [f"queue {queue}"]
    assert not os.path.exists(lease.file)
    client.delete(queue)  # kombu's queue_delete through a new connection leaves a Redis list behind
    client.close()


SECRETS_EVERYWHERE = '''"""A task whose argument, keyword, label and exception carry a password."""
from celery import Celery
from oomlab.config.scenario import Param, Plan, TaskCall

app = Celery("everywhere")
description = "secrets in every field"
PARAMS = [Param("database_url", "", "a database"), Param("dbPassword", "", "a password")]


@app.task
def touch(url, accessKey=None):
    raise ValueError(f"cannot connect to {url}")


def plan(ctx):
    url = ctx.params["database_url"]
    calls = [TaskCall(touch.name, (url,), {"accessKey": ctx.params["dbPassword"]}, label=f"to {url}")]
    return Plan(calls, timeout=30)
'''


@pytest.mark.integration
@pytest.mark.parametrize("password", ["S3cret/with/slash", "S3cret with space"])
def test_a_password_is_in_no_file_of_the_run_and_its_report_and_export(tmp_path, password):
    """A URL's password holding `/` or a space, and a camelCase secret-named parameter: in no file of
    the run directory (run.json, worker.log with Celery's own exception lines, report.html), not in
    the Parquet export and not on the terminal."""
    folder = tmp_path / "scenarios"
    folder.mkdir(mode=0o700)
    (folder / "everywhere.py").write_text(SECRETS_EVERYWHERE)
    camel = f"camel{secrets.token_hex(6)}"
    url = f"postgresql://app:{password}@db.example/app"
    argv = ["run", str(folder / "everywhere.py"), "--results", str(tmp_path / "results")]
    argv += ["--param", f"database_url={url}", "--param", f"dbPassword={camel}"]
    done = subprocess.run(oomlab_cmd(*argv), capture_output=True, text=True, timeout=120 * TIME_SCALE)
    assert done.returncode == 0, done.stderr
    run_dir = run_dir_from(done.stdout)
    export = subprocess.run(
        oomlab_cmd("export", run_dir, "--parquet", str(tmp_path / "tasks.parquet")), capture_output=True, text=True
    )
    assert export.returncode == 0, export.stderr
    outputs = done.stdout + done.stderr + export.stdout + export.stderr
    assert password not in outputs and camel not in outputs
    files = [path for path, is_dir in _files_under(run_dir) if not is_dir] + [str(tmp_path / "tasks.parquet")]
    assert any(name.endswith("worker.log") for name in files) and any(name.endswith("report.html") for name in files)
    for path in files:
        with open(path, "rb") as handle:
            data = handle.read()
        assert password.encode() not in data and camel.encode() not in data, path
