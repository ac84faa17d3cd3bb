"""Every child Python oomlab starts on the host (pip for the worker image, memray's flame graphs, the
queue janitor, the worker) goes through one helper, oomlab.trust.python_argv: -P, so a `memray/` or
`pip/` package planted where oomlab was started never runs as root, and a private working directory.
Read from the source: no module under harness/ names sys.executable but that helper."""

from __future__ import annotations

import ast
import os

import pytest

from tests.security.test_workdir import record, run_from
from tests.worker.docker.test_docker_through_the_api import HARNESS, modules

HELPER = "trust.py"
PLANTED = 'open({marker!r}, "a").write("imported as " + __name__ + "\\n")  # root, if ever imported\n'


def sys_executable_uses(tree: ast.Module) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "executable"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
    ]


def test_only_the_helper_starts_a_child_python():
    found = modules(HARNESS)
    assert HELPER in found and sys_executable_uses(found[HELPER]), "the helper no longer names sys.executable"
    offending = sorted(
        f"{path}:{line}" for path, tree in found.items() if path != HELPER for line in sys_executable_uses(tree)
    )
    assert not offending, f"a child Python started without oomlab.trust.python_argv / run_python: {offending}"


@pytest.mark.integration
def test_a_memray_planted_where_a_profiled_run_starts_is_never_imported(public_tmp, other_user, tmp_path):
    shared = public_tmp / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # a sticky /tmp-like folder everybody can write
    marker = shared / "imported"
    other_user.run("mkdir", str(shared / "memray"))
    for name in ("__init__.py", "__main__.py"):
        other_user.write(str(shared / "memray" / name), PLANTED.format(marker=str(marker)))
    args = ("--profile", "all", "--tasks", "2", "--param", "over=0", "--results", str(tmp_path / "r"))
    result = run_from(shared, "run", "alloc", *args)
    assert not marker.exists(), f"root imported the planted memray: {marker.read_text()}"
    assert result.returncode == 0, result.stderr
    run = record(result.stdout)
    assert run["status"] == "complete"
    assert [t for t in run["tasks"] if t.get("profile", {}).get("flamegraph")], "no flame graph was made"
