"""Files a user names for oomlab to write (`export --parquet OUT`, `gate --junit PATH`, `gate
--markdown PATH`, $GITHUB_STEP_SUMMARY): oomlab runs as root, so a name in a directory another user
can write, or a link they planted beside it (`OUT.partial`), must never turn the write into one to
root's files. A destination directory they can write is refused (exit 3); a new file is made with a
random name and O_EXCL, then renamed; an appended file is opened with O_NOFOLLOW and checked."""

from __future__ import annotations

import os
import pathlib

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
