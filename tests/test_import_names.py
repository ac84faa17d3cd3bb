"""oomlab installs under one import name: the folders harness/ and scenarios/ are where its code lives
in the repository, never what code imports. An `import harness` works in a checkout and fails in
every installed copy, so it is refused here, in the package and everything around it. And every
package folder is in pyproject's explicit package list, or the wheel would be missing it."""

from __future__ import annotations

import ast
import os
import re
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKED = ("harness", "scenarios", "tests", "bench", "vmlane", "tools", "examples")
FOLDER_NAMES = ("harness", "scenarios")
SKIPPED_DIRS = {"__pycache__", ".venv", "build", "results", ".git"}
# code written by a test into a file (a pytester project, a user's scenario): an import line in a string
IMPORT_LINE = re.compile(r"^\s*(?:from|import)\s+(harness|scenarios)\b(?!\.py)", re.M)


def python_files(top: str):
    for directory, dirs, files in os.walk(os.path.join(ROOT, top)):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(directory, name)


def by_folder_name(module: str | None) -> bool:
    return module is not None and module.split(".")[0] in FOLDER_NAMES


def folder_imports(source: str, path: str) -> list[str]:
    """`line: statement` for each import of harness or scenarios by name (a relative import is fine),
    importlib.import_module("harness...") included."""
    found = []
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if by_folder_name(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module] if node.level == 0 and by_folder_name(node.module) else []
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = IMPORT_LINE.findall(node.value)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
            "__import__",
        ):
            first = node.args[0] if node.args else None
            literal = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
            names = [literal] if by_folder_name(literal) else []
        else:
            continue
        found += [f"{node.lineno}: {name}" for name in names if name]
    return found


def test_nothing_imports_the_repository_folders_by_name():
    offenders = []
    for top in CHECKED:
        for path in python_files(top):
            if path == os.path.abspath(__file__):
                continue  # its own examples below, which the last test checks are seen
            with open(path, encoding="utf-8") as handle:
                source = handle.read()
            offenders += [f"{os.path.relpath(path, ROOT)}:{hit}" for hit in folder_imports(source, path)]
    assert offenders == [], "import oomlab.* instead of the repository's folder names:\n" + "\n".join(offenders)


def test_the_check_sees_each_way_of_importing_a_folder():
    source = "import harness\nfrom harness.run import runner\nimport scenarios.alloc as a\nimportlib.import_module('harness.x')\n"
    assert folder_imports(source, "<example>") == [
        "1: harness",
        "2: harness.run",
        "3: scenarios.alloc",
        "4: harness.x",
    ]
    assert folder_imports("from . import harness\nimport oomlab.scenarios\nimport harnessed\n", "<example>") == []
    written = 'path.write_text("from harness import measure_peak\\n")\n'  # code a test writes to a file
    assert folder_imports(written, "<example>") == ["1: harness"]
    assert folder_imports('doc = "see harness/trust.py or scenarios.py"\n', "<example>") == []


def package_folders() -> set[str]:
    """Every folder under harness/ and scenarios/ that holds Python code, as the name it installs as."""
    names = set()
    for folder, installed in (("harness", "oomlab"), ("scenarios", "oomlab.scenarios")):
        for path in python_files(folder):
            relative = os.path.relpath(os.path.dirname(path), os.path.join(ROOT, folder))
            names.add(installed if relative == "." else ".".join([installed, *relative.split(os.sep)]))
    return names


def data_folders(setuptools: dict) -> set[str]:
    """The packages [tool.setuptools.package-data] ships files of: each must be a folder of the tree."""
    names = set(setuptools.get("package-data", {}))
    for name in names:
        folder = os.path.join(ROOT, "harness", *name.split(".")[1:])
        assert os.path.isdir(folder) and os.listdir(folder), f"package-data names {name}, not a folder with files"
    return names


def test_every_package_folder_is_in_the_wheel():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        setuptools = tomllib.load(handle)["tool"]["setuptools"]
    listed = setuptools["packages"]
    assert len(listed) == len(set(listed)), "a package is listed twice in pyproject's [tool.setuptools] packages"
    data = data_folders(setuptools) - package_folders()  # folders of data only (report.html's assets)
    assert data == {"oomlab.report.assets"}, data
    assert set(listed) == package_folders() | data, (
        "pyproject's [tool.setuptools] packages must list every folder with code under harness/ and scenarios/: "
        f"missing {sorted((package_folders() | data) - set(listed))}, not a folder {sorted(set(listed) - package_folders() - data)}"
    )
