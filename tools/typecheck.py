"""mypy over the package as it installs: `python -m tools.typecheck [mypy options]`.

The repository keeps its layout (harness/, scenarios/) while the package is `oomlab` and
`oomlab.scenarios` (pyproject's package-dir). A type checker cannot follow setuptools' editable
import hook, so this lays the package out under its real name as a tree of symlinks in
build/typecheck/, runs mypy on it, and prints every path as the repository's own file."""

from __future__ import annotations

import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREE = os.path.join(ROOT, "build", "typecheck")
LAYOUT = {"oomlab": "harness", os.path.join("oomlab", "scenarios"): "scenarios"}


def link_tree() -> dict[str, str]:
    """build/typecheck/oomlab/... -> harness/..., real directories, one symlink per .py file."""
    shutil.rmtree(TREE, ignore_errors=True)
    back: dict[str, str] = {}
    for package, source in LAYOUT.items():
        for directory, dirs, files in os.walk(os.path.join(ROOT, source)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            relative = os.path.relpath(directory, os.path.join(ROOT, source))
            target = os.path.normpath(os.path.join(TREE, package, relative))
            os.makedirs(target, exist_ok=True)
            for name in files:
                if name.endswith((".py", ".pyi", ".typed")):
                    os.symlink(os.path.join(directory, name), os.path.join(target, name))
            back[os.path.relpath(target, ROOT)] = os.path.normpath(os.path.join(source, relative))
    return back


def main(argv: list[str]) -> int:
    from mypy import api

    back = link_tree()
    os.environ["MYPYPATH"] = TREE
    os.chdir(ROOT)
    stdout, stderr, status = api.run(["-p", "oomlab", "-p", "bench", "-p", "vmlane", "-p", "tools", *argv])
    for prefix in sorted(back, key=len, reverse=True):  # the longest (most nested) first
        stdout = stdout.replace(prefix + os.sep, back[prefix] + os.sep)
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
