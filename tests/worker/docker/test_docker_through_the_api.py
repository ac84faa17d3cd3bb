"""oomlab talks to Docker through the engine's API (the Docker SDK for Python), never by running the
`docker` command and parsing what it prints: read from the source, so it fails on the first argv that
starts with "docker" anywhere under harness/, and on any program the Docker placement starts other
than pip (which makes the worker image's wheelhouse)."""

from __future__ import annotations

import ast
import os

import oomlab

HARNESS = os.path.dirname(oomlab.__file__)
DOCKER_COMMANDS = ("docker", "docker-compose")
RUNS_A_PROGRAM = {
    ("subprocess", name) for name in ("run", "Popen", "call", "check_call", "check_output", "getoutput")
} | {("os", name) for name in ("system", "popen", "execv", "execvp", "execve", "execlp", "spawnv", "spawnvp")}
RUNS_PYTHON = ("run_python", "start_python")  # oomlab.trust's child Python: its arguments are the program's
RUNS_A_PROGRAM |= {("trust", name) for name in RUNS_PYTHON}


def modules(under: str) -> dict[str, ast.Module]:
    found = {}
    for root, _, files in os.walk(under):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                with open(path) as handle:
                    found[os.path.relpath(path, HARNESS)] = ast.parse(handle.read(), path)
    return found


def names_a_docker_command(node: ast.AST) -> bool:
    """["docker", ...], ("docker", ...), "docker ...", or shutil.which("docker")."""
    if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
        return names_a_docker_command(node.elts[0])
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.split(" ", 1)[0] in DOCKER_COMMANDS
    return False


def program_runs(tree: ast.Module) -> list[ast.Call]:
    def called(call: ast.Call) -> tuple[str, str] | None:
        func = call.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            return (func.value.id, func.attr)
        if isinstance(func, ast.Name) and func.id in RUNS_PYTHON:
            return ("trust", func.id)
        return None

    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and called(node) in RUNS_A_PROGRAM]


def docker_command_uses(tree: ast.Module) -> list[ast.expr]:
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and node.args]
    return [
        *(node for node in ast.walk(tree) if isinstance(node, (ast.List, ast.Tuple)) and names_a_docker_command(node)),
        *(call for call in program_runs(tree) if call.args and names_a_docker_command(call.args[0])),
        *(
            call
            for call in calls
            if isinstance(call.func, ast.Attribute)
            and call.func.attr == "which"
            and names_a_docker_command(call.args[0])
        ),
    ]


def test_no_module_under_harness_runs_the_docker_command():
    offending = sorted(
        {f"{path}:{node.lineno}" for path, tree in modules(HARNESS).items() for node in docker_command_uses(tree)}
    )
    assert not offending, (
        f"the docker command is run here; use the Docker SDK (oomlab.worker.docker.engine.client): {offending}"
    )


def constant_words(node: ast.expr) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def program_is_first_argument(call: ast.Call) -> bool:
    """subprocess.run(argv, ...): the program is its first argument; run_python("-m", "pip", ...): all."""
    return not (isinstance(call.func, ast.Name) and call.func.id in RUNS_PYTHON)


def test_the_docker_placement_starts_no_program_but_pip():
    runs = {
        f"{path}:{call.lineno}": set().union(
            *map(constant_words, call.args[: 1 if program_is_first_argument(call) else None])
        )
        for path, tree in modules(os.path.join(HARNESS, "worker", "docker")).items()
        for call in program_runs(tree)
    }
    assert runs, "the wheelhouse is made with pip (harness/worker/docker/engine.py); this test no longer sees it"
    assert all({"pip", "wheel"} <= words for words in runs.values()), runs
