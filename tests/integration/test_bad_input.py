"""Every bad input gets one sentence and its own exit code, never a traceback."""
from __future__ import annotations

import subprocess

import pytest

pytestmark = pytest.mark.integration


def _one_sentence(result, code, phrase):
    assert result.code == code, (result.code, result.stderr)
    assert phrase in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unknown_scenario(oomlab):
    _one_sentence(oomlab("run", "nope"), 2, "unknown scenario 'nope'; built-in scenarios: alloc")


def test_bad_size(oomlab):
    _one_sentence(oomlab("run", "alloc", "--memory", "lots"), 2, "'lots' is not a memory size")


def test_unknown_param(oomlab):
    _one_sentence(oomlab("run", "alloc", "--param", "colour=red"), 2, "has no parameter 'colour'")


def test_scenario_import_error(oomlab, tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import module_that_does_not_exist\napp = None\ndef plan(ctx): pass\n")
    _one_sentence(oomlab("run", str(path)), 6, "scenario broken failed to import: ModuleNotFoundError")


def test_broker_unreachable(oomlab):
    _one_sentence(oomlab("run", "alloc", "--broker", "redis://127.0.0.1:1/0"), 5, "broker redis://127.0.0.1:1/0 is unreachable")


def test_no_permission_for_a_cgroup(oomlab, tmp_path):
    readonly = tmp_path / "ro"
    readonly.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(readonly)], check=True)
    try:
        result = oomlab("run", "alloc", env={"OOMLAB_CGROUP_PARENT": str(readonly / "oomlab")})
    finally:
        subprocess.run(["umount", str(readonly)], check=True)
    _one_sentence(result, 3, "cannot create a memory cgroup")
    assert "as root" in result.stderr and "Delegate=yes" in result.stderr
