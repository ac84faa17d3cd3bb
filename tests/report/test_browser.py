"""The pages in a real headless Chromium: no console error, the rows and markers the record holds,
a hover that shows a task's exact peak, sorting, legend toggles, and a screenshot that is not blank.
Chromium missing fails these under CI=true (see conftest.py)."""

from __future__ import annotations

import io
import json
import os

import pytest
from oomlab.config.sizes import format_size
from oomlab.errors import EXIT_WORKER_START
from oomlab.report.html import build_report, write_gate, write_run_report
from oomlab.workflows.gate.verdict import Check, GateResult
from PIL import Image

from tests.report.conftest import FIXTURES


def _record(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "run.json")) as handle:
        return json.load(handle)


def _count(browser, selector: str) -> int:
    return browser.evaluate(f"document.querySelectorAll({json.dumps(selector)}).length")


def _tip(browser) -> str:
    return browser.evaluate(
        "(() => { const t = document.getElementById('tip'); return t.hidden ? '' : t.textContent; })()"
    )


def assert_not_blank(png: bytes) -> None:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.width >= 800 and image.height >= 600
    colors = image.getcolors(maxcolors=1 << 20) or []
    assert len(colors) > 50, f"only {len(colors)} colours: a blank page"
    background = max(colors)[0]
    assert background < 0.97 * image.width * image.height  # more than a background with a speck


def test_run_page_rows_markers_hover_and_screenshot(browser, run_dir):
    record = _record(run_dir)
    browser.open(write_run_report(run_dir))
    assert browser.errors() == []
    assert _count(browser, "#tasks tbody tr") == len(record["tasks"]) == 8
    assert _count(browser, "svg .kill-marker") == len(record["kills"]) == 1
    spans = sum(len(task["executions"]) for task in record["tasks"])
    assert _count(browser, "svg .task-span") == spans

    biggest = max((t for t in record["tasks"] if t["peak_is_exact"]), key=lambda t: t["peak_rss_bytes"])
    assert _tip(browser) == ""
    browser.hover(f'svg .task-span[data-task-id="{biggest["id"]}"]')
    tip = _tip(browser)
    assert f"peak {format_size(biggest['peak_rss_bytes'])} (exact, VmHWM)" in tip
    assert biggest["id"] in tip and "outcome succeeded" in tip
    # the hovered span's table row lights up with it
    assert browser.evaluate(
        f'document.querySelector(\'#tasks tr[data-task-id="{biggest["id"]}"]\').classList.contains("hl")'
    )

    killed = next(t for t in record["tasks"] if t["outcome"] == "killed")
    browser.hover(f'svg .task-span[data-task-id="{killed["id"]}"]')
    assert f"RSS at the kill {format_size(killed['peak_rss_bytes'])} (the kernel's figure" in _tip(browser)

    browser.hover("svg .kill-marker .hit")
    tip = _tip(browser)
    kill = record["kills"][0]
    assert f"OOM kill (oom) of child {kill['pid']}" in tip and "kmsg +0.2 ms" in tip

    assert_not_blank(browser.screenshot())


def test_task_table_sorts_by_peak(browser, run_dir):
    record = _record(run_dir)
    browser.open(write_run_report(run_dir))
    peak_column = (
        "Array.from(document.querySelectorAll('#tasks thead th')).findIndex(th => th.textContent === 'peak RSS')"
    )
    first_row_id = "document.querySelector('#tasks tbody tr').dataset.taskId"
    by_peak = sorted(record["tasks"], key=lambda t: t["peak_rss_bytes"])
    assert browser.evaluate(first_row_id) == record["tasks"][0]["id"]  # the table starts in run order
    browser.evaluate(f"document.querySelectorAll('#tasks thead th')[{peak_column}].click()")
    assert browser.evaluate(first_row_id) == by_peak[0]["id"]
    browser.evaluate(f"document.querySelectorAll('#tasks thead th')[{peak_column}].click()")
    assert browser.evaluate(first_row_id) == by_peak[-1]["id"]
    order = browser.evaluate("Array.from(document.querySelectorAll('#tasks tbody tr')).map(r => r.dataset.taskId)")
    assert order == [t["id"] for t in reversed(by_peak)]
    assert browser.errors() == []


def test_legend_hides_and_shows_a_line(browser, run_dir):
    browser.open(write_run_report(run_dir))
    shown = "getComputedStyle(document.querySelector('polyline[data-series=\"group\"]')).display"
    assert browser.evaluate(shown) != "none"
    browser.click('.legend-item[data-series="group"]')
    assert browser.evaluate(shown) == "none"
    browser.click('.legend-item[data-series="group"]')
    assert browser.evaluate(shown) != "none"


def test_compare_page_shows_variants_side_by_side(browser, run_dir, tmp_path):
    compare = tmp_path / "compare-alloc.json"
    runs = [{"variant": v, "run_dir": run_dir} for v in ("bad", "fixed")]
    compare.write_text(json.dumps({"schema": "oomlab.compare/1", "scenario": "alloc", "runs": runs}))
    browser.open(build_report(str(compare)))
    assert browser.errors() == []
    assert browser.evaluate(
        "Array.from(document.querySelectorAll('#variants thead th')).map(th => th.textContent)"
    ) == [
        "",
        "bad",
        "fixed",
    ]
    assert _count(browser, "#timelines figure") == 2 and _count(browser, "svg .kill-marker") == 2


def test_lab_page_truth_table_and_evidence(browser, lab_dir):
    with open(os.path.join(lab_dir, "lab.json")) as handle:
        lab = json.load(handle)
    browser.open(build_report(lab_dir))
    assert browser.errors() == []
    assert _count(browser, "#truth-table > tbody > tr") == len(lab["cells"]) == 2
    task_id = lab["cells"][0]["delivery"]["verdicts"][0]["task_id"]
    browser.evaluate("document.querySelector('#truth-table details').open = true")
    evidence = browser.evaluate("document.querySelector('#truth-table details').innerText")
    assert task_id in evidence and "FAILURE" in evidence and "oomlab +" in evidence
    assert "guest:guest" not in browser.evaluate("document.body.innerText")


def test_recommend_page_trials_and_bars(browser, recommend_path):
    browser.open(build_report(recommend_path))
    assert browser.errors() == []
    assert _count(browser, "#trials tbody tr") == 4
    assert _count(browser, "svg.bars rect.bar") == 8 and _count(browser, "svg.bars rect.bar.bad") == 1


def test_capacity_page_fleet_split_proofs_and_proof_under_load(browser, capacity_path):
    with open(capacity_path) as handle:
        record = json.load(handle)
    browser.open(build_report(capacity_path))
    assert browser.errors() == []
    assert _count(browser, "#fleet tbody tr") == len(record["rows"]) == 4
    # the cheapest safe row is marked, and it is the record's choice
    chosen = "Array.from(document.querySelectorAll('#fleet tr.chosen td')).map(td => td.textContent)"
    cells = browser.evaluate(chosen)
    choice = record["choice"]
    assert cells[:4] == [str(choice["replicas"]), format_size(choice["candidate"]["limit_bytes"]), "prefork", "2"]
    assert "cheapest safe" in cells and _count(browser, "#fleet tr.chosen") == 1
    # the split plan: one class beside two, each class of the two proven by its own run
    assert _count(browser, '#split-classes tr[data-plan="one"]') == 1
    assert _count(browser, '#split-classes tr[data-plan="two"]') == 2
    assert _count(browser, '#class-proofs tr[data-held="1"]') == len(record["split_proofs"]) == 2
    proofs = browser.evaluate("document.querySelector('#class-proofs').innerText")
    assert "57/57" in proofs and "3/3" in proofs
    assert _count(browser, "svg.bars rect.bar") == 3 and _count(browser, "svg.bars rect.bar.good") == 1
    browser.hover("svg.bars rect.bar.good")
    assert _tip(browser) == "small + big queue: 512.0 MiB, each class proven"
    # the proof under load at the chosen setting, and one step up
    assert _count(browser, "#proof-runs tbody tr") == 2
    assert "queue wait met" in browser.evaluate("document.querySelector('#proof').innerText")
    assert _count(browser, "#handover a") == 6
    assert_not_blank(browser.screenshot())


def test_gate_page_regression_bars(browser, run_dir):
    result = GateResult(checks=[Check("alloc.allocate", "peak:10%", 100 * 2**20, 130 * 2**20, True)])
    browser.open(write_gate(result, run_dir))
    assert browser.errors() == []
    assert _count(browser, "#checks tr.regression") == 1
    browser.hover("svg.bars rect.bar.bad")
    assert "current 130.0 MiB" in _tip(browser)


@pytest.mark.integration
def test_a_real_run_writes_a_page_chromium_renders(browser, oomlab):
    result = oomlab("run", "alloc", "--memory", "256MiB", "--concurrency", "2")
    assert result.code == 0, result.stderr
    record = result.record
    page = os.path.join(result.run_dir, "report.html")
    browser.open(page)
    assert browser.errors() == []
    assert _count(browser, "#tasks tbody tr") == len(record["tasks"])
    assert _count(browser, "svg .kill-marker") == len(record["kills"]) >= 1
    assert_not_blank(browser.screenshot())


@pytest.mark.integration
def test_a_run_whose_worker_never_started_still_gets_a_page(browser, oomlab, tmp_path):
    """20 MiB is below what the worker needs to start: its main process is OOM-killed during start-up,
    no task runs, yet the run has its page (the ReportWriter hook runs for every run) showing that
    kill, and Chromium renders it without a console error."""
    result = oomlab("run", "alloc", "--memory", "20MiB")
    assert result.code == EXIT_WORKER_START and "Traceback" not in result.stderr, result.stderr
    (run_dir,) = [str(path) for path in (tmp_path / "results").iterdir() if not path.name.startswith(".")]
    with open(os.path.join(run_dir, "run.json")) as handle:
        record = json.load(handle)
    assert record["status"] == "worker_start_failed" and record["tasks"] == []
    assert record["files"].get("report") == "report.html"
    browser.open(os.path.join(run_dir, "report.html"))
    assert browser.errors() == []
    assert _count(browser, "#tasks tbody tr") == 0
    assert _count(browser, "svg .kill-marker") == len(record["kills"]) >= 1
    assert [kill["role"] for kill in record["kills"]] == ["main"]
    assert "worker_start_failed: worker could not start" in browser.evaluate("document.body.innerText")
    assert_not_blank(browser.screenshot())


def test_a_profiled_tasks_flame_graph_is_linked_from_its_row_and_span(browser, run_dir):
    from tests.report.test_html_pages import add_flamegraph

    task_id = add_flamegraph(run_dir)
    os.makedirs(os.path.join(run_dir, "profiles"))
    with open(os.path.join(run_dir, "profiles", "task-1.html"), "w") as handle:
        handle.write("<!DOCTYPE html><title>flame graph</title>")
    browser.open(write_run_report(run_dir))
    assert browser.errors() == []
    row_link = f'#tasks tr[data-task-id="{task_id}"] a.flamegraph'
    assert browser.evaluate(f"document.querySelector('{row_link}').href").endswith("/profiles/task-1.html")
    browser.hover(f'svg a.flamegraph .task-span[data-task-id="{task_id}"]')
    assert "click: memray flame graph (profiles/task-1.html)" in _tip(browser)


def test_a_load_runs_page_shows_its_streamed_tasks_exact_peaks(browser, load_run_dir):
    """A load run keeps its tasks in tasks.jsonl: the page folds the stream into per-name exact peak
    figures and a distribution, the largest tasks with their exact peaks, and the killed ones."""
    tasks = _record(str(FIXTURES / "run-alloc"))["tasks"]  # as run.json held them before the move
    exact = sorted((t for t in tasks if t["peak_is_exact"]), key=lambda t: t["peak_rss_bytes"], reverse=True)
    browser.open(write_run_report(load_run_dir))
    assert browser.errors() == []
    assert _count(browser, "#tasks tbody tr") == 0 and _count(browser, "#task-names tbody tr") == 1
    cells = browser.evaluate("Array.from(document.querySelectorAll('#task-names tbody td')).map(td => td.textContent)")
    assert cells[:6] == ["alloc.allocate", "8", "7", "0", "1", "7"]  # tasks, succeeded, failed, killed, exact
    assert format_size(exact[0]["peak_rss_bytes"]) in cells and "8" in browser.evaluate(
        "document.querySelector('#summary .card b').textContent"
    )
    assert _count(browser, "#largest-tasks tbody tr") == len(exact) == 7
    first = browser.evaluate("document.querySelector('#largest-tasks tbody tr').dataset.taskId")
    assert first == exact[0]["id"]
    bars = _count(browser, "svg.histogram rect.peak-bin")
    assert 1 <= bars <= 7
    browser.hover("svg.histogram rect.peak-bin")
    assert "task(s)" in _tip(browser) and "alloc.allocate" in _tip(browser)
    killed = next(t for t in tasks if t["outcome"] == "killed")
    assert _count(browser, "#killed-tasks tbody tr") == 1
    row = browser.evaluate("document.querySelector('#killed-tasks tbody tr').innerText")
    assert format_size(killed["peak_rss_bytes"]) in row  # the kernel's RSS at the kill, from run.json
    assert_not_blank(browser.screenshot())


def test_a_malformed_stream_line_is_said_on_the_page(browser, load_run_dir):
    with open(os.path.join(load_run_dir, "tasks.jsonl"), "a") as handle:
        handle.write('{"id": "x", "name": 5}\n{"id": "half')
    browser.open(write_run_report(load_run_dir))
    assert browser.errors() == []
    note = browser.evaluate("document.querySelector('#stream .stream-note').textContent")
    assert "1 malformed line(s) skipped" in note and "line 9: name: 5 is not a string" in note
    assert _count(browser, "#largest-tasks tbody tr") == 7  # the other lines still count


@pytest.mark.integration
def test_a_chord_sent_by_a_task_is_grouped_under_it_in_the_table_and_the_timeline(browser, oomlab):
    """A real chord run: the parts sit under the task that sent the chord and the callback under the
    part that sent it, in the table's rows and on the timeline's lanes of tasks started by tasks."""
    result = oomlab("run", "workflows", "--variant", "chord")
    assert result.code == 0, result.stderr
    tasks = result.record["tasks"]
    (sender,) = [t for t in tasks if t["name"] == "workflows.start"]
    (callback,) = [t for t in tasks if t["name"] == "workflows.collect"]
    browser.open(os.path.join(result.run_dir, "report.html"))
    assert browser.errors() == []
    rows = browser.evaluate(
        "Array.from(document.querySelectorAll('#tasks tbody tr'))"
        ".map(r => [r.dataset.taskId, r.dataset.depth, r.dataset.startedBy || ''])"
    )
    assert rows[0] == [sender["id"], "0", ""]
    assert [depth for _, depth, _ in rows] == ["0", "1", "1", "1", "2"]
    assert {starter for _, depth, starter in rows if depth == "1"} == {sender["id"]}
    assert rows[-1] == [callback["id"], "2", callback["parent_id"]]

    spans = sum(len(t["executions"]) for t in tasks)
    assert _count(browser, "svg .task-span") == _count(browser, "svg .tree-span") == spans == 5
    assert _count(browser, f'svg .task-group[data-root-id="{sender["id"]}"]') == 1
    labels = browser.evaluate("Array.from(document.querySelectorAll('svg .tree-label')).map(t => t.textContent)")
    assert labels[0] == "workflows.start" and labels[-1].endswith("\u2514 workflows.collect")
    part = next(t for t in tasks if t["name"] == "workflows.part")
    browser.hover(f'svg .tree-span[data-task-id="{part["id"]}"]')
    assert f"started by workflows.start {sender['id']}" in _tip(browser)
    assert browser.evaluate(
        f'document.querySelector(\'#tasks tr[data-task-id="{part["id"]}"]\').classList.contains("hl")'
    )
    assert_not_blank(browser.screenshot())


def test_a_load_runs_names_table_has_each_names_tree_needs_and_failures(browser, load_run_dir):
    """Beside the exact peaks, per name: the largest task-tree peak (programs a task ran included),
    the largest sampled need, and the failed tasks counted by exception type."""
    from oomlab.record.stream import TaskLine, TaskStream

    stream = TaskStream(load_run_dir)
    for index, (exception, tree, needs) in enumerate(
        [("ValueError", 150 << 20, 120 << 20), ("ValueError", 90 << 20, None), ("KeyError", None, 7 << 20)]
    ):
        stream.write(
            TaskLine(
                id=f"extra-{index}",
                name="alloc.allocate",
                outcome="failed",
                exception=exception,
                tree_peak_above_start_bytes=tree,
                tree_peak_is_exact=tree is not None,
                needs_above_start_bytes=needs,
            )
        )
    stream.close()
    browser.open(write_run_report(load_run_dir))
    assert browser.errors() == []
    heads = browser.evaluate("Array.from(document.querySelectorAll('#task-names thead th')).map(th => th.textContent)")
    cells = browser.evaluate("Array.from(document.querySelectorAll('#task-names tbody td')).map(td => td.textContent)")
    row = dict(zip([head.strip() for head in heads], cells, strict=True))
    assert row["failed"] == "3"
    assert row["tree max"] == format_size(150 << 20) and row["needs max"] == format_size(120 << 20)
    assert row["failures"] == "KeyError × 1, ValueError × 2"
