"""The shape of the code: module-level imports form no circle, the run never imports a report or
a command, and commands only translate (none imports another)."""

from __future__ import annotations

import ast
import os

import oomlab

ROOT = os.path.dirname(oomlab.__file__)


def module_name(path: str) -> str:
    relative = os.path.relpath(path, os.path.dirname(ROOT))[: -len(".py")].replace(os.sep, ".")
    return relative.removesuffix(".__init__")


def top_level_imports(path: str) -> set[str]:
    """Imports that run when the module loads: not inside functions or `if TYPE_CHECKING:`."""
    with open(path) as handle:
        tree = ast.parse(handle.read())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harness"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("harness"))
    return found


def graph() -> dict[str, set[str]]:
    modules = {}
    for directory, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                modules[module_name(path)] = path
    return {name: top_level_imports(path) & set(modules) - {name} for name, path in modules.items()}


def test_no_import_runs_in_a_circle():
    edges = graph()
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges[node]):
            if state.get(target) == "open":
                raise AssertionError("import circle: " + " -> ".join([*trail, node, target]))
            if target not in state:
                visit(target, [*trail, node])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [])


def reachable(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in edges[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_the_run_imports_no_report_and_no_command():
    upward = {
        m for m in reachable("oomlab.run.runner", graph()) if m.startswith(("oomlab.report", "oomlab.cli.commands"))
    }
    assert not upward, f"the run reaches {sorted(upward)} at import"


def is_command(module: str) -> bool:
    """A command module (`oomlab.cli.commands.run`); `oomlab.cli.commands._x` is one command's private part."""
    return module.startswith("oomlab.cli.commands.") and not module.rpartition(".")[2].startswith("_")


def test_no_command_imports_another():
    edges = graph()
    for name, targets in edges.items():
        if is_command(name):
            others = {t for t in targets if is_command(t)}
            assert not others, f"{name} imports {sorted(others)}: shared arguments belong in oomlab.cli.args"
