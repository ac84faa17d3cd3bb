"""No module under harness/ opens a file for writing with a plain open(path, "w"): files in run, results
and state directories go through oomlab.trust (open_in_dir, write_private_atomic, create_private,
open_append), which never write through a planted link. Read from the source; the cgroup filesystem's
control files (root's, in sysfs) are the one place a plain write is right."""

from __future__ import annotations

import ast

from tests.worker.docker.test_docker_through_the_api import HARNESS, modules

# they write cgroup control files (sysfs, where no user plants links): the limits, and the probe's leaf
CGROUP_WRITERS = {"worker/limits/base.py", "probe/task_tree.py"}


def plain_writes(tree: ast.Module) -> list[int]:
    """Lines calling the builtin open() with a mode that writes, appends or creates, and no opener."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open"):
            continue
        if any(keyword.arg == "opener" for keyword in node.keywords):
            continue
        mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
        text = mode.value if isinstance(mode, ast.Constant) and isinstance(mode.value, str) else ""
        if mode is not None and (not text or set(text) & set("wax+")):  # a computed mode counts as writing
            found.append(node.lineno)
    return found


def test_the_scan_finds_a_plain_write():
    assert plain_writes(ast.parse('open(p, "w")\nopen(p)\nopen(p, "rb")\nopen(p, mode="a")\nopen(p, m)')) == [1, 4, 5]
    assert plain_writes(ast.parse('open(p, "w", opener=o)')) == []


def test_no_module_writes_through_a_plain_open():
    found = modules(HARNESS)
    assert set(found) >= CGROUP_WRITERS
    offending = sorted(
        f"{path}:{line}" for path, tree in found.items() if path not in CGROUP_WRITERS for line in plain_writes(tree)
    )
    assert not offending, f"a file written with a plain open(), not through oomlab.trust: {offending}"
