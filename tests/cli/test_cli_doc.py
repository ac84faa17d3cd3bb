"""docs/cli.md is what the parser generates (so it lists every flag as it is), and the version has one
source that `oomlab --version` and the package metadata both read."""

from __future__ import annotations

import os
import sys

import oomlab
import pytest
from oomlab.cli import doc as clidoc
from oomlab.cli.main import main

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_cli_reference_is_current():
    with open(os.path.join(ROOT, "docs", "cli.md"), encoding="utf-8") as handle:
        written = handle.read()
    assert written == clidoc.render(), f"docs/cli.md is stale: run `{clidoc.REGENERATE}` and commit it"


def test_the_reference_covers_every_subcommand_and_flag():
    text = clidoc.render()
    for heading in ("`oomlab run`", "`oomlab recommend`", "`oomlab gate`", "`oomlab baseline save`"):
        assert f"# {heading}" in text
    assert "`--memory MEMORY`" in text
    assert "%(" not in text and "peak:10%," in text  # argparse's %-expansion done, once


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f"oomlab {oomlab.__version__}"


def test_pyproject_reads_the_version_from_harness():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        pyproject = tomllib.load(handle)
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "oomlab.version.__version__"}
