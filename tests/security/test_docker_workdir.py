"""The Docker placement's worker runs as root with host paths mounted, and Celery's find_app puts its
working directory first on sys.path while it imports `-A oomlab.worker.app`: the container must work
in a private directory of the run's, never in the directory oomlab was started from, or another
user's `oomlab/` package there runs as root (and, through the mount, can change the host)."""

from __future__ import annotations

import os

import pytest

from tests.conftest import assert_nothing_left
from tests.security.test_workdir import record, run_from

pytestmark = [pytest.mark.integration, pytest.mark.docker]

PLANTED = 'open({marker!r}, "a").write("imported as " + __name__ + "\\n")  # root, if ever imported\n'


def test_a_package_planted_where_a_docker_run_starts_is_never_imported(public_tmp, other_user, tmp_path):
    shared = public_tmp / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # a sticky /tmp-like folder everybody can write
    marker = shared / "imported"
    other_user.run("mkdir", str(shared / "oomlab"))
    for name in ("__init__.py", "worker.py", "__main__.py"):
        other_user.write(str(shared / "oomlab" / name), PLANTED.format(marker=str(marker)))
    for name in ("celery.py", "kombu.py"):
        other_user.write(str(shared / name), PLANTED.format(marker=str(marker)))
    args = ("--placement", "docker", "--memory", "256MiB", "--tasks", "2", "--param", "over=0")
    result = run_from(shared, "run", "alloc", *args, "--results", str(tmp_path / "r"), timeout=600)
    assert not marker.exists(), f"the container's worker imported the planted package: {marker.read_text()}"
    assert result.returncode == 0, result.stderr
    run = record(result.stdout)
    assert run["status"] == "complete" and run["group"]["placement"] == "docker"
    assert_nothing_left(run["run_id"])
