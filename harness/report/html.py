"""report.html: one self-contained page per run, comparison, recommendation, lab and gate, built
from the saved records alone (a report never re-measures), so `oomlab report PATH` can rebuild any
of them later from a copied results directory."""

from __future__ import annotations

import os
import pathlib
import webbrowser
from typing import TYPE_CHECKING

from oomlab.errors import BadInput
from oomlab.record.digest import TaskDigest
from oomlab.record.fleet import FLEET_FILE
from oomlab.record.stream import TASKS_FILE, StreamCheck, streamed_tasks
from oomlab.report.html_data import RunView, Series, StreamView, adapt, memory_series, stream_view
from oomlab.report.html_page import FOOTER, REPORT_FILE, html_beside, page, read_json, write_page
from oomlab.report.html_run import run_sections, title_and_subtitle

if TYPE_CHECKING:
    from oomlab.workflows.gate.verdict import GateResult

# the other kinds' pages are imported where they are built: a run writing its report.html at its end
# holds only the run page's code (recommend's and the lab's pages pull in their workflows)


def read_run(run_dir: str) -> tuple[RunView, list[Series]]:
    path = os.path.join(run_dir, "run.json")
    raw = read_json(path)
    _check_run_shape(raw, path)
    view = adapt(raw)
    series = memory_series(view, run_dir)
    return view, series


# run.json's sections the page reads, and the JSON type each must have
_SECTIONS = {"config": dict, "summary": dict, "group": dict, "worker": dict, "tasks": list, "kills": list}


def _check_run_shape(raw: dict, path: str) -> None:
    """`{}`, another kind of file or a section of the wrong type (`config: "x"`): one sentence, never a
    blank page or a traceback. Lighter than the typed schema, so a page is still made of an older record."""
    if not str(raw.get("schema", "")).startswith("oomlab.run/"):
        raise BadInput(f"{path} is not an oomlab run record (schema {raw.get('schema')!r})")
    for name, kind in _SECTIONS.items():
        if raw.get(name) is not None and not isinstance(raw[name], kind):
            raise BadInput(
                f"{path} is not an oomlab run record: its {name} is not a JSON {'object' if kind is dict else 'array'}"
            )


def read_stream(run_dir: str, view: RunView) -> StreamView | None:
    """A load run's tasks.jsonl folded in one pass (None: the run has no stream); a killed task's
    line gets the kernel's RSS at its kill from run.json where it has none."""
    check = StreamCheck(os.path.join(run_dir, TASKS_FILE))
    if not os.path.exists(check.path):
        return None
    return stream_view(TaskDigest.of(streamed_tasks(check, view.kills)), check)


def render_run(run_dir: str) -> str:
    view, series = read_run(run_dir)
    title, subtitle = title_and_subtitle(view)
    return page(title, subtitle, run_sections(view, series, read_stream(run_dir, view)), FOOTER)


def write_run_report(run_dir: str) -> str:
    return write_page(os.path.join(run_dir, REPORT_FILE), render_run(run_dir))


def _find_run_dir(recorded: str, beside: str) -> str:
    """A run directory as recorded, or by its name next to the record that lists it (a copied tree)."""
    if os.path.isfile(os.path.join(recorded, "run.json")):
        return recorded
    return os.path.join(beside, os.path.basename(os.path.normpath(recorded)))


def write_compare_report(compare_path: str) -> str:
    from oomlab.report.html_compare import VariantRun, compare_sections

    record = read_json(compare_path)
    page_dir = os.path.dirname(os.path.abspath(compare_path))
    runs = []
    for item in record.get("runs") or []:
        variant, run_dir = str(item.get("variant", "?")), _find_run_dir(str(item.get("run_dir", "")), page_dir)
        try:
            runs.append(VariantRun(variant, run_dir, *read_run(run_dir)))
        except BadInput:
            runs.append(VariantRun(variant, run_dir, None, []))
    title = f"oomlab compare {record.get('scenario', '?')}"
    html_text = page(title, f"{len(runs)} variants under the same limit", compare_sections(page_dir, runs), FOOTER)
    return write_page(html_beside(compare_path), html_text)


def write_gate(result: GateResult, run_dir: str) -> str:
    """RUN_DIR/gate.html for the gate's verdict on the run in RUN_DIR."""
    from oomlab.report.html_gate import write_gate_report

    try:
        run = read_run(run_dir)
    except BadInput:
        run = None  # the verdict's page still stands without the run's picture
    return write_gate_report(result, run_dir, run)


def build_report(path: str) -> str:
    """The page for whatever oomlab record PATH is (a run or lab directory, a compare or recommend
    JSON file), rebuilt in place; its path."""
    from oomlab.report.html_capacity import write_capacity_report
    from oomlab.report.html_lab import write_lab_report
    from oomlab.report.html_recommend import write_recommend_report

    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "run.json")):
            return write_run_report(path)
        if os.path.isfile(os.path.join(path, "lab.json")):
            return write_lab_report(path)
        if os.path.isfile(os.path.join(path, FLEET_FILE)):
            raise BadInput(
                f"{path} is a fleet run's: fleet records have no HTML report yet; its record is "
                f"{os.path.join(path, FLEET_FILE)} (the run's console output summed it up)"
            )
        raise BadInput(f"{path} has neither run.json nor lab.json: not an oomlab run or lab directory")
    schema = str(read_json(path).get("schema", ""))
    if schema.startswith("oomlab.compare/"):
        return write_compare_report(path)
    if schema.startswith("oomlab.recommend/"):
        return write_recommend_report(path)
    if schema.startswith("oomlab.capacity/"):
        return write_capacity_report(path)
    if schema.startswith("oomlab.run/"):
        return write_run_report(os.path.dirname(path) or ".")
    if schema.startswith("oomlab.lab."):
        return write_lab_report(os.path.dirname(path) or ".")
    raise BadInput(f"{path} is not a record oomlab can report on (schema {schema or 'missing'!r})")


def show_report(path: str, open_it: bool) -> None:
    """Print where the page is; with `open_it`, open it in the user's browser too (a server or CI
    job has none: then the printed path is the way to it)."""
    opened = False
    if open_it:
        try:
            opened = webbrowser.open(pathlib.Path(path).resolve().as_uri())
        except webbrowser.Error:
            opened = False
    if open_it and not opened:
        print(f"no browser to open here; the report is {path}", flush=True)
    else:
        print(path, flush=True)
