"""Inputs that used to hang oomlab, cost it gigabytes or end in a traceback: FIFOs and devices where a
file belongs, deeply nested JSON, counts and spans no machine could run, records of the wrong shape.
Each is one sentence and exit 2, at once, with nothing run."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys

import pytest
from oomlab.errors import EXIT_BAD_INPUT

from tests.conftest import oomlab_cmd

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "run-alloc")
QUICK = 30  # seconds: every refusal here is immediate; a hang fails the test instead of stalling it


def _oomlab(*argv: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(oomlab_cmd(*argv), capture_output=True, text=True, timeout=QUICK, cwd=cwd)


def _one_sentence(proc: subprocess.CompletedProcess, code: int = EXIT_BAD_INPUT) -> str:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("oomlab") and proc.stderr.count("\n") == 1, proc.stderr
    return proc.stderr


@pytest.fixture
def run_dir(tmp_path) -> str:
    target = tmp_path / "run"
    shutil.copytree(FIXTURE, target)
    return str(target)


@pytest.fixture
def fifo(tmp_path) -> str:
    path = str(tmp_path / "fifo.json")
    os.mkfifo(path)
    return path


def _nested(path: str, depth: int = 100_000) -> str:
    with open(path, "w") as handle:
        handle.write("[" * depth + "]" * depth)
    return path


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_a_fifo_or_device_is_never_read(tmp_path, run_dir, fifo, special):
    path = fifo if special == "fifo" else special
    _one_sentence(_oomlab("gate", "--baseline", path, "--current", run_dir))
    _one_sentence(_oomlab("report", path))
    # as the run record itself, inside a run directory
    for name in ("run.json", "tasks.jsonl"):
        target = tmp_path / f"holder-{name}"
        shutil.copytree(run_dir, target)
        (target / name).unlink(missing_ok=True)
        if special == "fifo":
            os.mkfifo(target / name)
        else:
            os.symlink(special, target / name)
        _one_sentence(_oomlab("report", str(target)))
        _one_sentence(_oomlab("export", str(target), "--parquet", str(tmp_path / "x.parquet")))
        _one_sentence(_oomlab("baseline", "save", str(target), str(tmp_path / "b.json")))
        _one_sentence(_oomlab("gate", "--baseline", str(tmp_path / "none.json"), "--current", str(target)))
    assert not os.path.exists(tmp_path / "b.json") and not os.path.exists(tmp_path / "x.parquet")


def test_deeply_nested_json_is_one_sentence(tmp_path, run_dir):
    nested = _nested(str(tmp_path / "nested.json"))
    assert "nests deeper" in _one_sentence(_oomlab("gate", "--baseline", nested, "--current", run_dir))
    holder = tmp_path / "nested-run"
    holder.mkdir()
    _nested(str(holder / "run.json"))
    for argv in (
        ("report", str(holder)),
        ("export", str(holder), "--parquet", str(tmp_path / "x.parquet")),
        ("baseline", "save", str(holder), str(tmp_path / "b.json")),
        ("gate", "--baseline", str(tmp_path / "none.json"), "--current", str(holder)),
    ):
        assert "nests deeper" in _one_sentence(_oomlab(*argv))


@pytest.mark.parametrize("record", [{}, "config-x"])
def test_report_of_a_record_that_is_not_one(tmp_path, run_dir, record):
    path = os.path.join(run_dir, "run.json")
    if record == "config-x":
        with open(path) as handle:
            data = json.load(handle)
        data["config"] = "x"
    else:
        data = record
    with open(path, "w") as handle:
        json.dump(data, handle)
    _one_sentence(_oomlab("report", run_dir))
    assert not os.path.exists(os.path.join(run_dir, "report.html"))


def test_a_baseline_with_negative_statistics_is_refused(tmp_path, run_dir):
    baseline = str(tmp_path / "baseline.json")
    subprocess.run(oomlab_cmd("baseline", "save", run_dir, baseline, "--force"), check=True, timeout=QUICK)
    with open(baseline) as handle:
        data = json.load(handle)
    for stats in data["tasks"].values():
        stats["kills"] = -1
        stats["max"] = -5
    with open(baseline, "w") as handle:
        json.dump(data, handle)
    assert "0 or more" in _one_sentence(_oomlab("gate", "--baseline", baseline, "--current", run_dir))


def test_baseline_save_refuses_a_run_with_failed_tasks(tmp_path, run_dir):
    path = os.path.join(run_dir, "run.json")
    with open(path) as handle:
        data = json.load(handle)
    data["summary"]["outcomes"]["failed"] = 2
    with open(path, "w") as handle:
        json.dump(data, handle)
    baseline = str(tmp_path / "baseline.json")
    assert "failed" in _one_sentence(_oomlab("baseline", "save", run_dir, baseline))
    assert not os.path.exists(baseline)
    assert _oomlab("baseline", "save", run_dir, baseline, "--force").returncode == 0


@pytest.mark.parametrize(
    "flags",
    [
        ("--tasks", "99999999999999999999"),
        ("--concurrency", "99999999"),
        ("--stages", ""),
        ("--stages", "99999999999h:5/s"),
        ("--stages", "10s:0/s,720h:0.000001/s"),
        ("--rate", "100000000/s", "--duration", "1h"),
        ("--rate", "", "--duration", "1s"),
        ("--in-flight", "999999999", "--tasks", "5"),
        ("--timeout", "1e12"),
        ("--sample-hz", "1e9"),
    ],
)
def test_counts_and_spans_are_bounded(tmp_path, flags):
    """Refused before any worker starts: no run directory is made."""
    results = tmp_path / "results"
    _one_sentence(_oomlab("run", "alloc", *flags, "--results", str(results)))
    assert not results.exists() or not [n for n in os.listdir(results) if not n.startswith(".")]


@pytest.mark.parametrize("umask", ["000", "002", "020", "007"])
def test_a_umask_that_lets_others_write_is_refused(tmp_path, umask):
    """A group- or world-writable run directory is one another user could swap files in."""
    results = tmp_path / "results"
    proc = subprocess.run(
        oomlab_cmd("run", "alloc", "--tasks", "1", "--results", str(results)),
        capture_output=True,
        text=True,
        timeout=QUICK,
        env={**os.environ, "OOMLAB_UMASK": umask},
    )
    assert "other users write" in _one_sentence(proc)
    assert not results.exists()


MAX_RSS_KIB = 200 * 1024  # the CLI reading a run directory: tens of MiB; the line read whole cost 1.6 GB


def _max_rss_kib(*argv: str) -> tuple[subprocess.CompletedProcess, int]:
    """`oomlab ARGV` and its peak RSS, measured by a fresh parent (RUSAGE_CHILDREN of its one child)."""
    measure = (
        "import json, resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(json.dumps([done.returncode, done.stdout, done.stderr, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", measure, *oomlab_cmd(*argv)], capture_output=True, text=True, timeout=QUICK
    )
    code, stdout, stderr, rss = json.loads(out.stdout)
    return subprocess.CompletedProcess(argv, code, stdout, stderr), rss


def test_a_sparse_line_in_tasks_jsonl_costs_a_line_cap_not_its_length(run_dir, tmp_path):
    """A run directory another user made (or a disk error) with a 768 MiB line of NULs: one malformed
    line, read a MiB at a time, the tasks around it still read."""
    with open(os.path.join(run_dir, "run.json")) as handle:
        tasks = json.load(handle)["tasks"]
    task = {k: tasks[0][k] for k in ("id", "name", "outcome", "sent_mono", "attempts")}
    with open(os.path.join(run_dir, "tasks.jsonl"), "w") as handle:
        handle.write(json.dumps(task) + "\n")
        handle.truncate(768 * 1024 * 1024 + handle.tell())
    with open(os.path.join(run_dir, "tasks.jsonl"), "a") as handle:
        handle.write("\n" + json.dumps({**task, "id": "after"}) + "\n")
    done, rss = _max_rss_kib("baseline", "save", run_dir, str(tmp_path / "b.json"), "--force")
    assert rss < MAX_RSS_KIB, f"reading the sparse line took {rss // 1024} MiB"
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    done, rss = _max_rss_kib("export", run_dir, "--parquet", str(tmp_path / "tasks.parquet"))
    assert rss < MAX_RSS_KIB, f"exporting past the sparse line took {rss // 1024} MiB"
    assert done.returncode == 0, done.stderr
    assert "1 malformed line(s)" in done.stderr and "longer than 1024 KiB" in done.stderr, done.stderr


def test_bounded_lines_cap_each_line_and_the_total():
    from oomlab.record.reading import BoundedLines

    data = b"a\n" + b"x" * 25 + b"\nb\nlast-without-newline"
    lines = BoundedLines(io.BytesIO(data), max_line=10)
    assert list(lines) == [b"a\n", None, b"b\n", None]  # a line past the cap: None, whatever ends it
    lines = BoundedLines(io.BytesIO(data), max_line=30)
    assert list(lines) == [b"a\n", b"x" * 25 + b"\n", b"b\n", b"last-without-newline"] and not lines.capped
    capped = BoundedLines(io.BytesIO(data), max_line=30, max_total=5)
    assert list(capped) == [b"a\n", b"xxx"] and capped.capped


def test_a_huge_log_in_a_share_is_copied_a_line_cap_at_a_time(tmp_path):
    """An attached worker's 384 MiB worker.log of one line (a sparse file: NULs, no newline until its
    end) costs the copy into the run directory a MiB at a time, not the line (or the file) whole. VmHWM,
    not ru_maxrss: Linux starts a child's ru_maxrss from its parent's (this test runner's) RSS."""
    share, run_dir = tmp_path / "share", tmp_path / "run"
    share.mkdir(mode=0o700)
    run_dir.mkdir(mode=0o700)
    size = 384 * 1024 * 1024
    with open(share / "worker.log", "wb") as handle:
        handle.truncate(size)
        handle.seek(size)
        handle.write(b"\nredis://u:pw@h/0 last line\n")
    measure = (
        "import sys; from oomlab.worker.share import copy_share_file; "
        "copy_share_file(sys.argv[1], 'worker.log', sys.argv[2]); "
        "print([int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM:')][0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", measure, str(share), str(run_dir)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    rss = int(done.stdout)
    assert rss < MAX_RSS_KIB, f"copying the log took {rss // 1024} MiB"
    copied = run_dir / "worker.log"
    assert copied.stat().st_size == size + len(b"\nredis://u:***@h/0 last line\n")
    with open(copied, "rb") as handle:
        handle.seek(size)
        assert handle.read() == b"\nredis://u:***@h/0 last line\n"
