"""Fixtures for the report tests: copies of the committed records (a page is written beside its
record, never into the repository) and one real headless Chromium per module."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def run_dir(tmp_path) -> str:
    """tests/fixtures/run-alloc: a real `oomlab run alloc --memory 256MiB --concurrency 2` (8 tasks,
    one OOM kill), its run-specific paths scrubbed."""
    target = tmp_path / "run-alloc"
    shutil.copytree(FIXTURES / "run-alloc", target)
    return str(target)


@pytest.fixture
def lab_dir(tmp_path) -> str:
    target = tmp_path / "lab-delivery"
    shutil.copytree(FIXTURES / "lab-delivery", target)
    return str(target)


@pytest.fixture
def recommend_path(tmp_path) -> str:
    target = tmp_path / "recommend-leak.json"
    shutil.copy(FIXTURES / "recommend.json", target)
    return str(target)


@pytest.fixture
def capacity_path(tmp_path) -> str:
    """tests/fixtures/capacity.json: a real `oomlab recommend capacity_mix --rate 20/s --queue-wait-p95 0.5
    --memory 256MiB --memory 384MiB --pools prefork,threads --max-concurrency 4 --measure-seconds 2s
    --prove-seconds 3s --param heavy_mib=96 --param io_sleep=0.1` (a split plan, each class proven), its
    paths cut to their names."""
    target = tmp_path / "recommend-capacity-mix.json"
    shutil.copy(FIXTURES / "capacity.json", target)
    return str(target)


@pytest.fixture(scope="module")
def browser():
    """A real Chromium; missing, the test fails under CI=true (where .ci/run installs it) and skips elsewhere."""
    from tests.report.browser import Browser, find_chromium

    if find_chromium() is None:
        message = "no chromium on PATH: apt-get install chromium (Debian's package)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with Browser() as instance:
        yield instance


@pytest.fixture
def load_run_dir(run_dir) -> str:
    """The real alloc run as a load run records it: its 8 tasks moved from run.json into tasks.jsonl
    (as the driver writes them: a killed task's line without a figure), run.json's list empty."""
    import dataclasses
    import json

    from oomlab.record.schema import RunRecord
    from oomlab.record.stream import TaskStream, line_of

    path = os.path.join(run_dir, "run.json")
    with open(path) as handle:
        data = json.load(handle)
    stream = TaskStream(run_dir)
    for task in RunRecord.from_json(data).tasks:
        line = line_of(task)
        killed = task.outcome == "killed"
        stream.write(dataclasses.replace(line, peak_rss_bytes=None) if killed else line)
    stream.close()
    data["tasks"], data["load"] = [], {"tasks_file": "tasks.jsonl", "counts": {"sent": 8}}
    data["summary"]["tasks"] = 8
    with open(path, "w") as handle:
        json.dump(data, handle)
    return run_dir
