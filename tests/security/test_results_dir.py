"""Results directories: a run writes there as root, so a results directory another user can write
(or one under a directory they can) is refused before anything is made in it (they could plant
`.inputs/*.tmp` symlinks, or swap the run directory for a tree of symlinks mid-run), and `oomlab
report` / `oomlab gate --current` never write their pages into another user's run directory, where
`report.html.tmp` or `gate.html.tmp` could be a symlink to root's files."""

from __future__ import annotations

import os
import pathlib
import shutil

import pytest

from tests.security.conftest import secret_file

FIXTURE = pathlib.Path(__file__).parent.parent / "fixtures" / "run-alloc"


def _results(public_tmp, other_user, how: str) -> pathlib.Path:
    if how == "owned by the other user":
        results = public_tmp / "results"
        results.mkdir()
        os.chown(results, other_user.uid, other_user.gid)
    elif how == "sticky and writable by all":
        results = public_tmp / "results"
        results.mkdir()
        os.chmod(results, 0o1777)
    else:  # root's own 0700 folder, under one everybody can write
        shared = public_tmp / "shared"
        shared.mkdir()
        os.chmod(shared, 0o777)
        results = shared / "results"
        results.mkdir(mode=0o700)
    return results


@pytest.mark.parametrize(
    "how", ["owned by the other user", "sticky and writable by all", "under a folder all can write"]
)
def test_a_results_directory_another_user_can_write_is_refused(oomlab, public_tmp, other_user, tmp_path, how):
    results = _results(public_tmp, other_user, how)
    target = str(tmp_path / "root-secret")
    text = secret_file(target)
    if how == "owned by the other user":  # what they plant: the inputs a scenario writes as root, linked
        other_user.run("mkdir", str(results / ".inputs"))
        for pid in range(300, 400):
            other_user.symlink(target, str(results / ".inputs" / f"payload-1MiB-0.bin.{pid}.tmp"))
    result = oomlab("run", "large-args", "--tasks", "1", "--results", str(results), timeout=60)
    assert pathlib.Path(target).read_text() == text, "the run wrote through a planted symlink"
    assert result.code == 3, result.stderr
    assert result.stderr.count("\n") == 1 and "refusing the results directory" in result.stderr
    assert [p for p in os.listdir(results) if not p.startswith(".")] == [], "a run directory was made there"


def _their_run_dir(public_tmp, other_user, target: str) -> pathlib.Path:
    """A real run record in a directory of the other user's, with the page's temp names linked to root's file."""
    run_dir = public_tmp / "theirs"
    shutil.copytree(FIXTURE, run_dir)
    for name in ("report.html.tmp", "gate.html.tmp", "report.html", "gate.html"):
        os.symlink(target, run_dir / name)
    for path in [run_dir, *run_dir.iterdir()]:
        os.lchown(path, other_user.uid, other_user.gid)
    return run_dir


@pytest.mark.parametrize("command", ["report", "gate"])
def test_pages_are_never_written_into_another_users_run_directory(oomlab, public_tmp, other_user, tmp_path, command):
    target = str(tmp_path / "root-secret")
    text = secret_file(target)
    run_dir = _their_run_dir(public_tmp, other_user, target)
    if command == "report":
        result = oomlab("report", str(run_dir))
    else:
        baseline = tmp_path / "baseline.json"
        result = oomlab("gate", "--current", str(run_dir), "--baseline", str(baseline), "--fail", "peak:10%")
    assert pathlib.Path(target).read_text() == text, f"`oomlab {command}` wrote through a planted symlink"
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert result.code == 3, result.stderr
    # the record there is not read (report) or the page is not written there (gate)
    assert "refusing the run directory" in result.stderr or "refusing the directory for the report" in result.stderr


@pytest.mark.integration
def test_a_run_directory_is_made_new_and_private(oomlab, tmp_path):
    result = oomlab("run", "alloc", "--tasks", "1", "--param", "over=0", "--results", str(tmp_path / "r"))
    assert result.code == 0, result.stderr
    assert os.stat(result.run_dir).st_mode & 0o777 == 0o700


def test_fleet_beside_never_reads_another_users_run_or_a_linked_record(oomlab, public_tmp, other_user, tmp_path):
    """`run --fleet ... --beside RUN_DIR` as root: a run directory another user owns is refused, and so
    is a run.json that is a symlink (to a root-only record they could not read themselves)."""
    fleet = (
        "run",
        "alloc",
        "--fleet",
        "redis://127.0.0.1:1/0/s",
        "--replicas",
        "1",
        "--broker",
        "redis://127.0.0.1:1/1",
    )
    theirs = public_tmp / "theirs"
    shutil.copytree(FIXTURE, theirs)
    for path in [theirs, *theirs.iterdir()]:
        os.lchown(path, other_user.uid, other_user.gid)
    result = oomlab(*fleet, "--beside", str(theirs))
    assert result.code == 3 and "refusing the run directory" in result.stderr, result.stderr

    private = tmp_path / "root-run"
    shutil.copytree(FIXTURE, private)
    linked = tmp_path / "linked"
    linked.mkdir(mode=0o700)
    os.symlink(private / "run.json", linked / "run.json")
    result = oomlab(*fleet, "--beside", str(linked))
    assert result.code == 2 and "symbolic link" in result.stderr and "Traceback" not in result.stderr, result.stderr
