"""The pages as files: self-contained, escaped, no secrets, rebuilt by `oomlab report`; the gate's
Markdown links its page. (What a browser makes of them is in test_browser.py.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from oomlab.cli.main import main as oomlab
from oomlab.errors import EXIT_BAD_INPUT, EXIT_OK
from oomlab.record.profile import TaskProfile
from oomlab.record.typed_json import to_json
from oomlab.report.gate import markdown
from oomlab.report.html import write_compare_report, write_gate, write_run_report
from oomlab.report.html_capacity import write_capacity_report
from oomlab.workflows.gate.verdict import Check, GateResult

from tests.conftest import oomlab_cmd


def _edit_record(run_dir: str, change) -> None:
    path = os.path.join(run_dir, "run.json")
    with open(path) as handle:
        record = json.load(handle)
    change(record)
    with open(path, "w") as handle:
        json.dump(record, handle)


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def test_the_run_page_needs_nothing_from_the_network(run_dir):
    text = _read(write_run_report(run_dir))
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"<(script|img|iframe)[^>]+src=|<link\b|@import|url\(", text, re.I)
    assert text.count("<script>") == 1 and text.count("<style>") == 1
    assert text.count('class="kill-marker"') == 1
    assert len(re.findall(r'<tr data-task-id="', text)) == 8


def test_record_text_is_escaped_and_passwords_are_not_written(run_dir):
    def poison(record):
        record["tasks"][0]["name"] = "<img src=x onerror=alert(1)>"
        record["tasks"][0]["exception"] = "</script><script>alert(2)</script>"
        record["config"]["broker"] = "amqp://guest:hunter2@127.0.0.1:5672//"
        record["environment"]["broker_url"] = "redis://:hunter2@127.0.0.1:6379/0"

    _edit_record(run_dir, poison)
    text = _read(write_run_report(run_dir))
    assert "<img src=x" not in text and "<script>alert(2)" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "hunter2" not in text and "amqp://guest:***@127.0.0.1:5672//" in text


def test_a_load_run_gets_its_throughput_and_latency_section(run_dir):
    text = _read(write_run_report(run_dir))
    assert 'id="load"' not in text

    def add_load(record):
        record["load"] = {
            "asked_per_s": 10.0,
            "counts": {"sent": 20, "succeeded": 20},
            "achieved_per_s": 9.5,
            "latency": {"queue_wait": {"p50": 0.012, "p95": 0.31, "max": 0.4, "n": 20}},
            "series": {
                "offered": {"width_s": 1.0, "values": [10.0, 10.0]},
                "achieved": {"width_s": 1.0, "values": [9.0, 10.0]},
                "in_flight": {"width_s": 1.0, "values": [1, 2]},
                "queue_depth": {"width_s": 1.0, "values": [0.0, 1.0]},
            },
        }

    _edit_record(run_dir, add_load)
    text = _read(write_run_report(run_dir))
    assert 'id="load"' in text and "throughput over time" in text and "backlog over time" in text
    assert "achieved (tasks/s)" in text and "0.012 / 0.31 / - / 0.4" in text


def test_oomlab_report_rebuilds_each_kind_of_record(run_dir, lab_dir, recommend_path, capacity_path, tmp_path, capsys):
    compare = tmp_path / "compare-alloc.json"
    runs = [{"variant": v, "run_dir": run_dir, "status": "complete", "summary": {}} for v in ("bad", "fixed")]
    compare.write_text(json.dumps({"schema": "oomlab.compare/1", "scenario": "alloc", "runs": runs}))
    expected = {
        run_dir: os.path.join(run_dir, "report.html"),
        lab_dir: os.path.join(lab_dir, "report.html"),
        recommend_path: recommend_path.replace(".json", ".html"),
        capacity_path: capacity_path.replace(".json", ".html"),
        str(compare): str(tmp_path / "compare-alloc.html"),
    }
    for path, page in expected.items():
        assert oomlab(["report", path]) == EXIT_OK
        assert capsys.readouterr().out.strip() == page
        assert os.path.getsize(page) > 5_000


def test_the_capacity_page_escapes_task_names_and_links_the_hand_over_beside_it(capacity_path):
    with open(capacity_path) as handle:
        record = json.load(handle)
    record["split"]["two_classes"][1]["kinds"] = ["<img src=x onerror=alert(1)>"]
    record["handover"]["split"][0] = "/somewhere/else/recommend-capacity-mix-split-celeryconfig.py"
    with open(capacity_path, "w") as handle:
        json.dump(record, handle)
    text = _read(write_capacity_report(capacity_path))
    assert "<img src=x" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    # the hand-over is written beside the record: linked there, wherever the record was made
    assert 'href="./recommend-capacity-mix-split-celeryconfig.py"' in text and "/somewhere" not in text


def test_a_split_that_failed_its_proofs_is_shown_not_proven_and_not_as_an_alternative(capacity_path):
    with open(capacity_path) as handle:
        record = json.load(handle)
    proven = _read(write_capacity_report(capacity_path))
    assert "total memory, split queues" in proven and "NOT proven" not in proven
    record["split_proofs"][0].update(held=False, why="1 OOM kill(s)")
    with open(capacity_path, "w") as handle:
        json.dump(record, handle)
    text = _read(write_capacity_report(capacity_path))
    assert "total memory, split queues" not in text and "small + big queue" not in text
    assert "The two-class plan is NOT proven (queue small: 1 OOM kill(s))" in text


def test_the_inverse_modes_page_shows_the_limit_and_its_two_trials(tmp_path):
    def trial(killed: bool) -> dict:
        return {"concurrency": 2, "run_dir": str(tmp_path / "r"), "killed": killed, "kills": int(killed), "tasks": 4}

    record = {
        "schema": "oomlab.capacity/1",
        "scenario": "capacity_mix",
        "mode": "concurrency",
        "concurrency": 2,
        "limit_bytes": 191 * 2**20,
        "below_bytes": 139 * 2**20,
        "per_child_bytes": 64 * 2**20,
        "fixed_bytes": 44 * 2**20,
        "held": trial(False),
        "below": trial(True),
        "verdict": "proven: 191.0 MiB held (group peak -) and 139.0 MiB was OOM-killed",
        "handover": {"one_class": [str(tmp_path / "recommend-limit-x-k8s.yaml")]},
    }
    path = tmp_path / "recommend-limit-x.json"
    path.write_text(json.dumps(record))
    text = _read(write_capacity_report(str(path)))
    assert "191.0 MiB" in text and "the limit --concurrency 2 needs" in text
    assert len(re.findall(r"<tr><td>(at that limit|just below)</td>", text)) == 2
    assert "OOM-killed" in text and "recommend-limit-x-k8s.yaml" in text
    assert "<p>proven: 191.0 MiB held (group peak -) and 139.0 MiB was OOM-killed</p>" in text


def test_oomlab_report_says_what_is_wrong_with_a_bad_path(tmp_path, capsys):
    assert oomlab(["report", str(tmp_path / "missing")]) == EXIT_BAD_INPUT
    (tmp_path / "other.json").write_text('{"schema": "something/1"}')
    assert oomlab(["report", str(tmp_path / "other.json")]) == EXIT_BAD_INPUT
    assert oomlab(["report", str(tmp_path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "does not exist" in err and "not a record oomlab can report on" in err and "neither run.json" in err
    assert "Traceback" not in err


def test_a_compare_page_lists_an_unreadable_variant_instead_of_failing(run_dir, tmp_path):
    compare = tmp_path / "compare-alloc.json"
    runs = [{"variant": "bad", "run_dir": run_dir}, {"variant": "fixed", "run_dir": str(tmp_path / "gone")}]
    compare.write_text(json.dumps({"schema": "oomlab.compare/1", "scenario": "alloc", "runs": runs}))
    text = _read(write_compare_report(str(compare)))
    assert "fixed: no readable run.json" in text and text.count('class="kill-marker"') == 1


@pytest.fixture
def regression() -> GateResult:
    return GateResult(
        checks=[
            Check("alloc.allocate", "peak:10%", 100 * 2**20, 130 * 2**20, True),
            Check("alloc.allocate", "oom", 0, 1, True),
        ],
        notices=["baseline b.json (run a) against run b"],
    )


def test_the_gate_page_draws_each_regression_and_the_markdown_links_it(run_dir, regression):
    page = write_gate(regression, run_dir)
    assert page == os.path.join(run_dir, "gate.html")
    text = _read(page)
    assert "+30.0%" in text and "allowed 110.0 MiB" in text and 'class="kill-marker"' in text
    summary = markdown(regression, page)
    assert f"[`{page}`]" in summary and "**REGRESSION**" in summary
    assert "gate.html" not in markdown(regression)


def test_report_open_hands_the_page_to_the_users_browser(run_dir, tmp_path):
    """$BROWSER is what Python's webbrowser module (and so --open) runs; here a script that notes its URL."""
    seen = tmp_path / "opened"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\necho "$1" > {seen}\n')
    script.chmod(0o755)
    env = {**os.environ, "BROWSER": str(script), "PYTHONPATH": os.getcwd()}
    proc = subprocess.run(oomlab_cmd("report", run_dir, "--open"), capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == os.path.join(run_dir, "report.html")
    for _ in range(50):  # webbrowser starts the command without waiting for it
        if seen.exists() and seen.read_text().strip():
            break
        time.sleep(0.1)
    assert seen.read_text().strip() == Path(run_dir, "report.html").as_uri()


def test_oomlab_gate_writes_its_page_and_the_markdown_links_it(run_dir, tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    # the fixture run had an OOM kill: not a baseline anyone should keep, so it takes --force
    assert oomlab(["baseline", "save", run_dir, str(baseline), "--force"]) == EXIT_OK
    saved = json.loads(baseline.read_text())
    task = saved["tasks"]["alloc.allocate"]
    for stat in ("max", "growth_max"):  # the baseline's peak and growth half of this run's (the default: growth)
        if task.get(stat) is not None:
            task[stat] //= 2
    baseline.write_text(json.dumps(saved))
    summary = tmp_path / "summary.md"
    code = oomlab(["gate", "--baseline", str(baseline), "--current", run_dir, "--markdown", str(summary)])
    assert code == 7  # EXIT_REGRESSION
    page = os.path.join(run_dir, "gate.html")
    assert f"report: {page}" in capsys.readouterr().out
    assert f"[`{page}`]" in summary.read_text()
    assert "+100." in _read(page)


def test_links_from_a_record_are_always_paths(tmp_path, monkeypatch):
    from oomlab.report.html_page import relative_link

    monkeypatch.chdir(tmp_path)
    assert 'href="./javascript:alert(1)/report.html"' in relative_link(
        str(tmp_path), "javascript:alert(1)///report.html", "x"
    )
    assert 'href="../run/report.html"' in relative_link(
        str(tmp_path / "lab"), str(tmp_path / "run" / "report.html"), "x"
    )


def add_flamegraph(run_dir: str, target: str = "profiles/task-1.html") -> str:
    """Marks the record's first task profiled, with memray's page at `target`; returns its id."""
    chosen: list[str] = []

    def profile_first(record):
        profile = TaskProfile("profiles/task-1.bin", "high-water mark", 1, 1, 1, None, None, None, flamegraph=target)
        record["tasks"][0]["profile"] = to_json(profile)
        chosen.append(record["tasks"][0]["id"])

    _edit_record(run_dir, profile_first)
    return chosen[0]


def test_a_profiled_task_links_its_flame_graph_from_its_row_and_span(run_dir):
    task_id = add_flamegraph(run_dir)
    text = _read(write_run_report(run_dir))
    row = re.search(rf'<tr data-task-id="{task_id}"[^>]*>.*?</tr>', text, re.S)
    assert row and '<a class="flamegraph" href="profiles/task-1.html">flame graph</a>' in row.group(0)
    span = re.search(rf'<a class="flamegraph" href="profiles/task-1.html"><rect [^>]*data-task-id="{task_id}"', text)
    assert span, "the task's span in the timeline opens its flame graph"
    assert "click: memray flame graph (profiles/task-1.html)" in text
    with open(os.path.join(run_dir, "run.json")) as handle:
        spans = len(json.load(handle)["tasks"][0]["executions"])
    assert text.count('class="flamegraph"') == 1 + spans  # its row and its spans, no other task's


@pytest.mark.parametrize("target", ["javascript:alert(1)", "/etc/passwd", "../other/x.html", "https://x/y.html"])
def test_a_flame_graph_link_from_a_record_stays_inside_the_run(run_dir, target):
    add_flamegraph(run_dir, target)
    text = _read(write_run_report(run_dir))
    assert 'class="flamegraph"' not in text


def test_a_task_profile_that_does_not_fit_is_refused_in_one_sentence(run_dir, capsys):
    add_flamegraph(run_dir)
    _edit_record(run_dir, lambda record: record["tasks"][0]["profile"].update(held_bytes="a lot"))
    assert oomlab(["report", run_dir]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "task profile does not fit: profile.held_bytes" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_load_run_counts_its_streamed_tasks_on_its_page_and_a_compare_page(load_run_dir, tmp_path):
    text = _read(write_run_report(load_run_dir))
    assert "<b>8</b><span>tasks</span>" in text and 'id="largest-tasks"' in text and 'id="task-table"' not in text
    compare = tmp_path / "compare-alloc.json"
    compare.write_text(
        json.dumps(
            {"schema": "oomlab.compare/1", "scenario": "alloc", "runs": [{"variant": "bad", "run_dir": load_run_dir}]}
        )
    )
    assert re.search(r"<td>tasks</td><td[^>]*>8</td>", _read(write_compare_report(str(compare))))
