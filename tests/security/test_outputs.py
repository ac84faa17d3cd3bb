"""Files a user names for oomlab to write (`export --parquet OUT`, `gate --junit PATH`, `gate
--markdown PATH`, $GITHUB_STEP_SUMMARY): oomlab runs as root, so a name in a directory another user
can write, or a link they planted beside it (`OUT.partial`), must never turn the write into one to
root's files. A destination directory they can write is refused (exit 3); a new file is made with a
random name and O_EXCL, then renamed; an appended file is opened with O_NOFOLLOW and checked."""

from __future__ import annotations

import os
import pathlib
import shutil

import pytest

from tests.security.conftest import secret_file

FIXTURE = pathlib.Path(__file__).parent.parent / "fixtures" / "run-alloc"


def _sticky_shared(public_tmp) -> pathlib.Path:
    shared = public_tmp / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # a /tmp-like folder everybody can write
    return shared


def test_export_never_writes_through_a_link_planted_beside_its_output(oomlab, public_tmp, other_user, tmp_path):
    shared = _sticky_shared(public_tmp)
    target = str(tmp_path / "root-secret")
    text = secret_file(target)
    out = shared / "tasks.parquet"
    for name in ("tasks.parquet.partial", "tasks.parquet.tmp", ".tasks.parquet.tmp"):
        other_user.symlink(target, str(shared / name))
    result = oomlab("export", str(FIXTURE), "--parquet", str(out))
    assert pathlib.Path(target).read_text() == text, "export wrote through a planted symlink"
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert result.code == 3, result.stderr
    assert result.stderr.count("\n") == 1 and "refusing the directory for the export" in result.stderr
    assert not out.exists()


def test_export_into_a_trusted_directory_leaves_no_temporary_file(oomlab, tmp_path):
    out = tmp_path / "out" / "tasks.parquet"
    out.parent.mkdir(mode=0o700)
    os.symlink(tmp_path / "elsewhere", out.parent / "tasks.parquet.partial")  # the old fixed name: ignored now
    result = oomlab("export", str(FIXTURE), "--parquet", str(out))
    assert result.code == 0, result.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["tasks.parquet", "tasks.parquet.partial"]
    assert not (tmp_path / "elsewhere").exists()


def _gate(oomlab, tmp_path, *outputs: str, env: dict | None = None):
    current = tmp_path / "current"
    baseline = tmp_path / "baseline.json"
    if not current.exists():
        shutil.copytree(FIXTURE, current)
        assert oomlab("baseline", "save", str(current), str(baseline), "--force").code == 0
    return oomlab(
        "gate", "--current", str(current), "--baseline", str(baseline), "--fail", "peak:10%", *outputs, env=env
    )


@pytest.mark.parametrize("how", ["--markdown", "GITHUB_STEP_SUMMARY"])
def test_a_markdown_summary_is_never_appended_through_a_planted_link(oomlab, public_tmp, other_user, tmp_path, how):
    shared = _sticky_shared(public_tmp)
    target = str(tmp_path / "root-secret")
    text = secret_file(target)
    summary = str(shared / "summary.md")
    other_user.symlink(target, summary)
    outputs, env = (("--markdown", summary), None) if how == "--markdown" else ((), {"GITHUB_STEP_SUMMARY": summary})
    result = _gate(oomlab, tmp_path, *outputs, env=env)
    assert pathlib.Path(target).read_text() == text, "the summary was appended to root's file"
    assert result.code == 3, result.stderr
    assert "refusing to append to the Markdown summary" in result.stderr and "symbolic link" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_markdown_summary_another_user_owns_or_hard_linked_is_refused(oomlab, public_tmp, other_user, tmp_path):
    shared = _sticky_shared(public_tmp)
    theirs = str(shared / "theirs.md")
    other_user.write(theirs, "their file\n")
    assert _gate(oomlab, tmp_path, "--markdown", theirs).code == 3
    assert pathlib.Path(theirs).read_text() == "their file\n"
    target = str(public_tmp / "root-secret")  # same file system as the shared folder
    text = secret_file(target)
    os.chmod(public_tmp, 0o755)
    os.link(target, shared / "linked.md")  # what another user can do where hard links are not protected
    result = _gate(oomlab, tmp_path, "--markdown", str(shared / "linked.md"))
    assert result.code == 3 and "hard links" in result.stderr, result.stderr
    assert pathlib.Path(target).read_text() == text


def test_junit_replaces_a_planted_link_and_never_writes_through_it(oomlab, public_tmp, other_user, tmp_path):
    shared = _sticky_shared(public_tmp)
    target = str(tmp_path / "root-secret")
    text = secret_file(target)
    junit = shared / "gate.xml"
    other_user.symlink(target, str(junit))
    result = _gate(oomlab, tmp_path, "--junit", str(junit))
    assert result.code == 0, result.stderr
    assert pathlib.Path(target).read_text() == text, "the JUnit XML was written through a planted symlink"
    assert not junit.is_symlink() and junit.read_text().startswith("<?xml")
    assert os.stat(junit).st_uid == 0


def test_gate_outputs_in_a_trusted_directory_are_written(oomlab, tmp_path):
    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    (out / "summary.md").write_text("# before\n")
    os.chmod(out / "summary.md", 0o664)  # group-writable, in a directory nobody else can change: fine
    result = _gate(oomlab, tmp_path, "--markdown", str(out / "summary.md"), "--junit", str(out / "gate.xml"))
    assert result.code == 0, result.stderr
    assert (out / "summary.md").read_text().startswith("# before\n") and len((out / "summary.md").read_text()) > 20
    assert (out / "gate.xml").read_text().startswith("<?xml")
    assert sorted(p.name for p in out.iterdir()) == ["gate.xml", "summary.md"]
