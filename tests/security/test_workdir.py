"""The worker's imports: Celery's find_app puts the working directory first on sys.path (whatever
PYTHONSAFEPATH says), so a worker started where another user can write would import their
`oomlab.py` as root. Every worker oomlab starts works in an empty private directory of its own, its
PYTHONPATH gains nothing, and a scenario's folder comes after the standard library. Celery's
environment overrides never switch the broker oomlab chose."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import redis

from tests.conftest import TIME_SCALE, assert_nothing_left

PLANTED = 'open({marker!r}, "a").write(__name__ + "\\n")  # runs as root if a worker ever imports it\n'
# generic top-level names a worker could look up: oomlab's own, Celery's, the old package name, stdlib
NAMES = ("oomlab", "harness", "celery", "kombu", "billiard", "redis", "socket", "json", "app", "tasks", "celeryconfig")
SCENARIO = "from oomlab.scenarios.alloc import DEFAULTS, PARAMS, app, plan  # noqa: F401\n"


def run_from(cwd, *args: str, env: dict | None = None, timeout: float = 150) -> subprocess.CompletedProcess:
    """`oomlab ARGS` started in `cwd` as a console script would be (-P: Python itself does not put the
    working directory on sys.path; what oomlab's workers do with it is what is tested)."""
    return subprocess.run(
        [sys.executable, "-P", "-m", "oomlab", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout * TIME_SCALE,
        env={**os.environ, **(env or {})},
    )


def record(stdout: str) -> dict:
    run_dir = stdout.strip().splitlines()[-1].strip()
    with open(os.path.join(run_dir, "run.json")) as handle:
        return json.load(handle)


@pytest.mark.integration
def test_modules_planted_where_oomlab_is_started_are_never_imported(public_tmp, other_user, tmp_path):
    attacker = public_tmp / "attacker"
    attacker.mkdir()
    os.chown(attacker, other_user.uid, other_user.gid)
    marker = public_tmp / "imported"
    os.chmod(public_tmp, 0o1777)  # the marker's folder: the planted code, run as anyone, can write it
    for name in NAMES:
        other_user.write(str(attacker / f"{name}.py"), PLANTED.format(marker=str(marker)))
    result = run_from(attacker, "run", "alloc", "--tasks", "2", "--param", "over=0", "--results", str(tmp_path / "r"))
    assert not marker.exists(), f"a worker imported {marker.read_text().split()} from its working directory"
    assert result.returncode == 0, result.stderr
    run = record(result.stdout)
    assert run["status"] == "complete"
    assert_nothing_left(run["run_id"])


@pytest.mark.integration
def test_a_celery_workdir_in_the_environment_never_moves_a_worker_where_another_user_can_write(
    public_tmp, other_user, tmp_path
):
    """CELERY_WORKDIR is `celery --workdir` (click's variable): the worker would change to it before
    importing `-A oomlab.worker.app` from there first."""
    attacker = public_tmp / "attacker"
    attacker.mkdir()
    os.chown(attacker, other_user.uid, other_user.gid)
    marker = public_tmp / "imported"
    os.chmod(public_tmp, 0o1777)
    other_user.run("mkdir", str(attacker / "oomlab"))
    other_user.write(str(attacker / "oomlab" / "__init__.py"), PLANTED.format(marker=str(marker)))
    result = run_from(
        tmp_path,
        "run", "alloc", "--tasks", "2", "--param", "over=0", "--results", str(tmp_path / "r"),
        env={"CELERY_WORKDIR": str(attacker)},
    )  # fmt: skip
    assert not marker.exists(), f"a worker imported {marker.read_text().split()} from CELERY_WORKDIR"
    assert result.returncode == 0, result.stderr
    assert record(result.stdout)["status"] == "complete"


@pytest.mark.integration
def test_a_scenario_folder_never_shadows_the_standard_library(tmp_path):
    folder = tmp_path / "scenarios"
    folder.mkdir(mode=0o700)
    (folder / "mine.py").write_text(SCENARIO)
    marker = tmp_path / "imported"
    for name in ("socket", "json", "selectors"):
        (folder / f"{name}.py").write_text(PLANTED.format(marker=str(marker)))
    result = run_from(folder, "run", "mine.py", "--tasks", "2", "--param", "over=0", "--results", str(tmp_path / "r"))
    assert not marker.exists(), f"the scenario's folder shadowed {marker.read_text().split()}"
    assert result.returncode == 0, result.stderr
    assert record(result.stdout)["status"] == "complete"


def test_oomlab_adds_nothing_to_a_workers_import_path():
    from oomlab.trust import import_env

    assert "PYTHONPATH" not in import_env()


TRAP_DB = 13  # a database of the shared Redis at 127.0.0.1:6379 the environment points Celery at


@pytest.mark.integration
@pytest.mark.services
def test_celerys_environment_never_switches_the_embedded_broker(tmp_path):
    trap = redis.Redis(host="127.0.0.1", port=6379, db=TRAP_DB)
    before = set(trap.keys("*"))
    url = f"redis://127.0.0.1:6379/{TRAP_DB}"
    env = {"CELERY_BROKER_URL": url, "CELERY_RESULT_BACKEND": url}
    result = run_from(
        tmp_path, "run", "alloc", "--tasks", "2", "--param", "over=0", "--results", str(tmp_path / "r"), env=env
    )
    assert result.returncode == 0, result.stderr
    run = record(result.stdout)
    assert run["status"] == "complete" and run["worker"]["broker"].startswith("redis+socket://")
    landed = {key.decode(errors="replace") for key in set(trap.keys("*")) - before}
    assert not [key for key in landed if "oomlab" in key or "kombu" in key or "celery" in key], landed
