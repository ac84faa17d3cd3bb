"""`oomlab baseline save` and `oomlab gate` on real runs: a baseline, a regression caught with its own
exit code, the first run writing the baseline, Markdown and JUnit reports, bad thresholds."""

from __future__ import annotations

import json
from xml.etree import ElementTree

import pytest
from oomlab.config.sizes import format_size

pytestmark = pytest.mark.integration


def alloc_run(oomlab, mib: int) -> str:
    result = oomlab("run", "alloc", "--tasks", "3", "--param", "over=0", "--param", f"sizes={mib}", "--param", "hold=0")
    assert result.code == 0, result.stderr
    return result.run_dir


def test_baseline_then_a_regression_is_caught(oomlab, tmp_path):
    small, large = alloc_run(oomlab, 16), alloc_run(oomlab, 48)
    baseline = tmp_path / "baseline.json"
    saved = oomlab("baseline", "save", small, str(baseline))
    assert saved.code == 0, saved.stderr
    assert "alloc.allocate: n=3 growth " in saved.stdout and "growth -" not in saved.stdout  # what the gate compares
    assert "`oomlab gate` compares growth (growth:10%,+2MiB) unless --fail or pyproject.toml" in saved.stdout
    assert json.loads(baseline.read_text())["tasks"]["alloc.allocate"]["n"] == 3

    same = oomlab("gate", "--baseline", str(baseline), "--current", small, "--fail", "peak:10%")
    assert same.code == 0, same.stdout + same.stderr
    assert "passed (1 check(s))" in same.stdout

    markdown, junit = tmp_path / "summary.md", tmp_path / "gate.xml"
    grown = oomlab(
        "gate",
        "--baseline",
        str(baseline),
        "--current",
        large,
        "--fail",
        "peak:10%",
        "--fail",
        "p95:+16MiB",
        "--markdown",
        str(markdown),
        "--junit",
        str(junit),
    )
    assert grown.code == 7, grown.stdout + grown.stderr  # a regression, not an error
    assert "2 regression(s) in 1 task(s)" in grown.stdout and "Traceback" not in grown.stderr
    assert "**REGRESSION**" in markdown.read_text()
    suite = ElementTree.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("2", "2")

    # an absolute threshold wide enough lets the same growth through
    loose = oomlab("gate", "--baseline", str(baseline), "--current", large, "--fail", "peak:+64MiB")
    assert loose.code == 0, loose.stdout


def test_first_run_writes_the_baseline_and_passes(oomlab, tmp_path):
    run_dir = alloc_run(oomlab, 16)
    baseline = tmp_path / "ci" / "baseline.json"
    markdown = tmp_path / "summary.md"
    first = oomlab("gate", "--baseline", str(baseline), "--current", run_dir, "--markdown", str(markdown))
    assert first.code == 0, first.stderr
    assert "is saved as the baseline" in first.stdout
    assert "baseline saved" in first.stdout and "passed (0 check(s))" not in first.stdout
    saved = json.loads(baseline.read_text())
    assert saved["schema"] == "oomlab.baseline/1"
    # what was saved, per task name, is shown: not an empty table of checks
    figures = saved["tasks"]["alloc.allocate"]
    shown = [format_size(figures[stat]) for stat in ("max", "p95", "growth_max")]
    (row,) = [line for line in first.stdout.splitlines() if "alloc.allocate" in line]
    assert all(figure in row for figure in shown) and " 3 " in row, first.stdout
    assert "verdict" not in first.stdout, first.stdout  # no checks were made: no table of them
    summary = markdown.read_text()
    assert "| alloc.allocate | 3 | " + " | ".join(shown[:3]) in summary, summary


def test_per_task_thresholds_from_pyproject(oomlab, tmp_path):
    small, large = alloc_run(oomlab, 16), alloc_run(oomlab, 48)
    baseline = tmp_path / "baseline.json"
    assert oomlab("baseline", "save", small, str(baseline)).code == 0
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[tool.oomlab.gate]\nfail = ["peak:1%"]\n[tool.oomlab.gate.tasks]\n"alloc.allocate" = ["peak:+64MiB"]\n'
    )
    result = oomlab("gate", "--baseline", str(baseline), "--current", large, "--pyproject", str(pyproject))
    assert result.code == 0, result.stdout  # the task's own threshold, not the default 1 %
    assert "peak:+64.0 MiB" in result.stdout


@pytest.mark.parametrize(
    "args, phrase",
    [
        (["--fail", "speed:10%"], "--fail takes STAT:N%, STAT:+SIZE or STAT:N%,+SIZE"),
        (["--current", "/nonexistent"], "/nonexistent holds no run.json"),
    ],
)
def test_gate_bad_input(oomlab, tmp_path, args, phrase):
    argv = ["gate", "--baseline", str(tmp_path / "b.json"), "--current", str(tmp_path), *args]
    result = oomlab(*argv)
    assert result.code == 2 and phrase in result.stderr and "Traceback" not in result.stderr


def test_load_bounds_need_no_baseline_and_a_run_past_one_is_not_the_first(oomlab, tmp_path):
    run = oomlab("run", "noop", "--rate", "20/s", "--duration", "2s")
    assert run.code == 0, run.stderr
    alone = oomlab("gate", "--current", run.run_dir, "--fail", "queue_wait.p95<30s")
    assert alone.code == 0, alone.stdout + alone.stderr
    assert "queue_wait.p95<30s" in alone.stdout
    memory = oomlab("gate", "--current", run.run_dir, "--fail", "peak:10%")
    assert memory.code == 2 and "give --baseline PATH" in memory.stderr and "Traceback" not in memory.stderr

    baseline = tmp_path / "new" / "baseline.json"
    broken = oomlab("gate", "--baseline", str(baseline), "--current", run.run_dir, "--fail", "queue_wait.p95<1ms")
    assert broken.code == 7, broken.stdout + broken.stderr
    assert "no baseline written" in broken.stdout and "the gate passes" not in broken.stdout
    assert not baseline.exists()
