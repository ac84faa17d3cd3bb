"""The one reader of a run's tasks (oomlab.record.stream.RunTasks) and what folds them (TaskDigest),
without a worker: what is written is read back as written; a line that is not a task is counted and
named, never passed on and never a traceback; a half-written last line (a run killed while writing)
is expected; and the figures are exact however the tasks are ordered."""

from __future__ import annotations

import json
import os
import random
import tempfile
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st
from oomlab.assemble.analysis import nearest_rank
from oomlab.config.options import RunConfig
from oomlab.record.digest import TaskDigest
from oomlab.record.schema import Execution, KillRecord, RunRecord, TaskRecord, write_json_atomic
from oomlab.record.stream import TASKS_FILE, RunTasks, TaskLine, TaskStream, line_of
from oomlab.record.typed_json import to_json
from oomlab.workflows.gate.stats import task_stats

MIB = 1 << 20
FUZZ = settings(max_examples=int(os.environ.get("OOMLAB_FUZZ_EXAMPLES", "60")), deadline=None)


def _record(tasks: list[TaskRecord] | None = None, kills: list[KillRecord] | None = None) -> RunRecord:
    return RunRecord("r", RunConfig("alloc", "256MiB", 2, 1), tasks=tasks or [], kills=kills or [])


def _line(index: int, peak_mib: int | None = 40, outcome: str = "succeeded", name: str = "alloc.allocate") -> TaskLine:
    peak = None if peak_mib is None else peak_mib * MIB
    return TaskLine(
        id=f"t{index}",
        name=name,
        label="fits",
        args=[float(index), 0.3],
        sent_mono=100.0 + index,
        started_mono=100.1 + index,
        finished_mono=100.5 + index,
        queue_wait_s=0.1,
        run_time_s=0.4,
        end_to_end_s=0.5,
        outcome=outcome,  # type: ignore[arg-type]
        pid=7,
        attempts=1,
        start_rss_bytes=50 * MIB,
        peak_rss_bytes=peak,
        peak_above_start_bytes=None if peak is None else peak - 50 * MIB,
        peak_is_exact=peak is not None,
    )


def _write(run_dir: str, lines: list[TaskLine]) -> None:
    stream = TaskStream(run_dir)
    for line in lines:
        stream.write(line)
    stream.close()


def test_what_the_driver_writes_is_read_back_as_written(tmp_path):
    lines = [_line(i, 40 + i) for i in range(5)]
    _write(str(tmp_path), lines)
    tasks = RunTasks(str(tmp_path), _record())
    assert list(tasks) == lines and list(tasks) == lines  # a second pass reads the stream again
    assert (tasks.check.lines, tasks.check.malformed, tasks.check.cut_last_line) == (5, 0, False)
    assert tasks.check.note() is None
    with open(tmp_path / TASKS_FILE) as handle:
        first = handle.readline()
    assert '"tree_peak_is_exact"' in first and '"memory_kinds"' not in first  # the tree streams, the kinds do not


def test_a_line_written_before_the_tree_was_streamed_reads_with_its_defaults(tmp_path):
    old = {"id": "t0", "name": "x", "outcome": "succeeded", "peak_rss_bytes": 5, "needs_above_start_bytes": 3}
    (tmp_path / TASKS_FILE).write_text(json.dumps(old) + "\n")
    (task,) = RunTasks(str(tmp_path), _record())
    assert task.tree_peak_above_start_bytes is None and not task.tree_peak_is_exact and task.needs_note is None
    assert task.needs_above_start_bytes == 3


def test_a_plan_runs_records_come_first_in_the_same_shape(tmp_path):
    run = Execution(9, 10.5, 0.0, 50 * MIB, finished_mono=11.0, peak_rss_bytes=90 * MIB)
    record = TaskRecord("p", "plan.task", "", [1], 10.0, "succeeded", pid=9, peak_rss_bytes=90 * MIB, executions=[run])
    record.peak_is_exact, record.tree_peak_above_start_bytes, record.tree_peak_is_exact = True, 44 * MIB, True
    _write(str(tmp_path), [_line(1)])
    plan, streamed = list(RunTasks(str(tmp_path), _record([record])))
    assert plan == line_of(record) and streamed.id == "t1"
    assert (plan.queue_wait_s, plan.run_time_s, plan.end_to_end_s) == (0.5, 0.5, 1.0)
    assert plan.growth == 44 * MIB and streamed.growth == -10 * MIB  # the tree's where exact, else VmHWM above start


def test_a_killed_task_gets_the_kernels_rss_at_its_kill_from_the_record(tmp_path):
    _write(str(tmp_path), [_line(1, None, "killed")])
    kill = KillRecord(7, "child", "t1", "alloc.allocate", "SIGKILL", "oom", 101.0, "kmsg", rss_bytes=250 * MIB)
    (task,) = RunTasks(str(tmp_path), _record(kills=[kill]))
    assert task.peak_rss_bytes == 250 * MIB and not task.peak_is_exact


def test_malformed_lines_are_counted_and_named_and_a_cut_last_line_is_expected(tmp_path):
    _write(str(tmp_path), [_line(1)])
    with open(tmp_path / TASKS_FILE, "a") as handle:
        handle.write('{"id": "t2", "name": "x", "peak_rss_bytes": "lots"}\n')
        handle.write("not json\n")
        handle.write(json.dumps({"id": "t3", "name": "x", "peak_rss_bytes": float("nan")}) + "\n")  # NaN is no figure
        handle.write('{"id": "t4", "nam')  # the run was killed while writing this one
    tasks = RunTasks(str(tmp_path), _record())
    assert [t.id for t in tasks] == ["t1"]
    check = tasks.check
    assert (check.lines, check.malformed, check.cut_last_line) == (1, 3, True)
    assert check.first_malformed == "line 2: peak_rss_bytes: 'lots' is not an integer"
    assert "3 malformed line(s) skipped" in (check.problem() or "") and check.note() == check.problem()


def test_only_a_cut_last_line_is_a_note_not_a_problem(tmp_path):
    _write(str(tmp_path), [_line(1)])
    with open(tmp_path / TASKS_FILE, "a") as handle:
        handle.write('{"id": "t2"')
    tasks = RunTasks(str(tmp_path), _record())
    assert len(list(tasks)) == 1 and tasks.check.problem() is None
    assert "half-written" in (tasks.check.note() or "")


task_lines = st.builds(
    _line,
    st.integers(0, 10**6),
    st.one_of(st.none(), st.integers(1, 4096)),
    st.sampled_from(["succeeded", "failed", "killed", "stuck"]),
    st.sampled_from(["a", "b", "c"]),
)
junk = st.one_of(
    st.binary(max_size=80).map(lambda raw: raw.replace(b"\n", b" ")),
    st.sampled_from([b"", b" ", b"[]", b"null", b"{}", b'{"id": 1}', b"[" * 5000, b'{"id":"x","name":"y","z":1}']),
    st.dictionaries(st.sampled_from(["id", "name", "pid", "args", "outcome", "peak_rss_bytes"]), st.integers()).map(
        lambda d: json.dumps(d).encode()
    ),
)


@FUZZ
@given(st.lists(st.one_of(task_lines, junk), max_size=30), st.integers(0, 200))
def test_any_stream_is_read_without_a_traceback_and_every_line_is_accounted_for(items, cut):
    with tempfile.TemporaryDirectory() as run_dir:
        raw = b"".join((json.dumps(to_json(i)).encode() if isinstance(i, TaskLine) else i) + b"\n" for i in items)
        raw = raw[: max(0, len(raw) - cut)] if cut % 3 == 0 else raw  # sometimes the end is cut mid-line
        with open(os.path.join(run_dir, TASKS_FILE), "wb") as handle:
            handle.write(raw)
        tasks = RunTasks(run_dir, _record())
        read = list(tasks)
    check = tasks.check
    # the last piece without its newline: a task cut short (expected), or a whole task whose newline was cut
    whole_task_uncut = check.lines + check.malformed - raw.count(b"\n")
    assert whole_task_uncut in (0, 1) and check.lines == len(read)
    assert check.cut_last_line == (bool(raw.rpartition(b"\n")[2]) and not whole_task_uncut)
    written = [i.id for i in items if isinstance(i, TaskLine)]
    assert [t.id for t in read] == written[: len(read)] and len(read) >= len(written) - 1  # none lost or made up


@FUZZ
@given(st.lists(st.integers(1, 300), min_size=1, max_size=200), st.randoms())
def test_the_folded_figures_are_exact_whatever_the_order(peaks_mib, rng):
    lines = [_line(i, p) for i, p in enumerate(peaks_mib)]
    rng.shuffle(lines)
    digest = TaskDigest.of(lines, keep=3)
    ordered = sorted(p * MIB for p in peaks_mib)
    held = digest.by_name["alloc.allocate"].peaks
    assert held.quantiles(0.5, 0.95, 0.99) == [nearest_rank(ordered, q) for q in (0.5, 0.95, 0.99)]
    assert (held.n, held.max, held.min) == (len(ordered), ordered[-1], ordered[0])
    assert [t.peak_rss_bytes for t in digest.largest] == ordered[::-1][:3]
    stats = task_stats(_record(), lines)["alloc.allocate"]
    assert (stats.p95, stats.max, stats.mean) == (
        nearest_rank(ordered, 0.95),
        ordered[-1],
        round(sum(ordered) / len(ordered)),
    )


def test_folding_holds_distinct_values_not_tasks():
    rng = random.Random(1)
    digest = TaskDigest.of(_line(i, rng.choice((40, 41, 80))) for i in range(100_000))
    held = digest.by_name["alloc.allocate"]
    assert held.peaks.n == 100_000 and len(held.peaks.counts) == 3 and len(digest.largest) == 20


def _traced_peak(read, run_dir: str) -> int:
    tracemalloc.start()
    try:
        read(run_dir)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_readers_memory_does_not_grow_with_the_stream(tmp_path):
    """Gate, report, split and the run assertion over 500 and 5,000 streamed tasks: the larger
    stream may cost a little more (more distinct peaks), never ten times more."""
    from oomlab.report.html import write_run_report
    from oomlab.testing.assertions import OomlabAssertionError, assert_run_peak_rss_below
    from oomlab.workflows.gate.runs import gated_runs
    from oomlab.workflows.recommend.split import kind_costs

    def judged(run_dir: str) -> None:
        try:
            assert_run_peak_rss_below(run_dir, "1GiB")
        except OomlabAssertionError:
            pass  # killed tasks: the message is made from the few it keeps

    readers = {
        "gate": lambda d: gated_runs([d]),
        "report": write_run_report,
        "split": lambda d: kind_costs(RunTasks(d)),
        "assertion": judged,
    }
    peaks: dict[str, list[int]] = {name: [] for name in readers}
    for count in (500, 5_000):
        run_dir = tmp_path / str(count)
        run_dir.mkdir()
        write_json_atomic(str(run_dir / "run.json"), _record().to_json())
        rng = random.Random(count)
        _write(
            str(run_dir),
            [_line(i, rng.randint(30, 230), rng.choice(["succeeded"] * 9 + ["killed"])) for i in range(count)],
        )
        for name, read in readers.items():
            peaks[name].append(_traced_peak(read, str(run_dir)))
    for name, (small, large) in peaks.items():
        assert large < 1.5 * small + MIB, f"{name}: {small} bytes at 500 tasks, {large} at 5,000"
