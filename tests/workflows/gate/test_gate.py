from xml.etree import ElementTree

import pytest
from oomlab.config.options import RunConfig
from oomlab.errors import BadInput
from oomlab.record.schema import KillRecord, RunRecord, TaskRecord
from oomlab.report.gate import junit_xml, markdown
from oomlab.workflows.gate.settings import read_gate_settings
from oomlab.workflows.gate.stats import stats_of, task_stats
from oomlab.workflows.gate.thresholds import Threshold, parse_threshold
from oomlab.workflows.gate.verdict import compare

MIB = 1024 * 1024


def test_threshold_grammar():
    assert parse_threshold("peak:10%") == Threshold("peak", percent=10.0)
    assert parse_threshold("p95:5%") == Threshold("p95", percent=5.0)
    assert parse_threshold("peak:+32MiB") == Threshold("peak", bytes=32 * MIB)
    assert parse_threshold("mean:1GiB") == Threshold("mean", bytes=1024 * MIB)
    assert str(parse_threshold("peak:+32MiB")) == "peak:+32.0 MiB"


@pytest.mark.parametrize("text", ["peak", "speed:10%", "peak:", "peak:ten%", "peak:-5%", "peak:lots"])
def test_bad_thresholds_are_bad_input(text):
    with pytest.raises(BadInput):
        parse_threshold(text)


def test_a_bare_number_asks_which_was_meant():
    with pytest.raises(BadInput, match=r"^--fail 'peak:10': 10 has no unit: write peak:10% or peak:\+10MiB$"):
        parse_threshold("peak:10")


def test_percent_and_absolute_thresholds_fire_only_past_the_growth():
    assert not Threshold("peak", percent=10).exceeded(100, 110)
    assert Threshold("peak", percent=10).exceeded(100, 111)
    assert not Threshold("peak", bytes=32).exceeded(100, 132)
    assert Threshold("peak", bytes=32).exceeded(100, 133)
    assert not Threshold("peak", percent=10).exceeded(100, 50)  # a drop is never a regression


def test_stats_use_measured_values_only():
    s = stats_of([10, 20, 30, 40, 1000])
    assert (s.n, s.min, s.max, s.p50, s.p95, s.mean) == (5, 10, 1000, 30, 1000, 220)


def test_task_stats_skip_killed_runs_but_count_their_kills():
    def task(name, peak, exact):
        return TaskRecord(
            id=name, name=name, label="", args=[], sent_mono=0.0, peak_rss_bytes=peak, peak_is_exact=exact
        )

    def kill(name):
        return KillRecord(1, "child", None, name, "SIGKILL", "oom", 0.0, "kmsg")

    record = RunRecord(
        run_id="r", config=RunConfig("alloc", "1MiB", 1, 1), tasks=[task("a", 5, True), task("a", 99, False)]
    )
    record.kills = [kill("a"), kill("b")]
    stats = task_stats(record)
    assert (stats["a"].n, stats["a"].max, stats["a"].kills) == (1, 5, 1)
    assert (stats["b"].n, stats["b"].kills) == (0, 1)


def test_compare_flags_growth_new_kills_and_notes_new_and_missing_tasks():
    baseline = {"a": stats_of([100 * MIB]), "gone": stats_of([MIB])}
    current = {"a": stats_of([120 * MIB], kills=1), "new": stats_of([MIB])}
    result = compare(baseline, current, [parse_threshold("peak:10%")], {})
    assert [(c.task, c.threshold, c.failed) for c in result.checks] == [("a", "oom", True), ("a", "peak:10%", True)]
    assert any("new is new" in n for n in result.notices) and any(
        "gone is in the baseline" in n for n in result.notices
    )
    per_task = compare(
        baseline, {"a": stats_of([120 * MIB])}, [parse_threshold("peak:10%")], {"a": [parse_threshold("peak:+32MiB")]}
    )
    assert [(c.threshold, c.failed) for c in per_task.checks] == [("peak:+32.0 MiB", False)]


def test_markdown_and_junit_name_the_regression():
    result = compare({"a": stats_of([100 * MIB])}, {"a": stats_of([150 * MIB])}, [parse_threshold("peak:10%")], {})
    text = markdown(result)
    assert (
        "1 regression(s)" in text
        and "| a | peak:10% | 100.0 MiB | 150.0 MiB | +50.0% (50.0 MiB) | **REGRESSION** |" in text
    )
    suite = ElementTree.fromstring(junit_xml(result))
    assert (suite.get("tests"), suite.get("failures")) == ("1", "1")
    assert "100.0 MiB -> 150.0 MiB" in suite.find("testcase/failure").get("message")


def test_pyproject_thresholds(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.oomlab.gate]\nfail = ["p95:5%"]\n[tool.oomlab.gate.tasks]\n"shop.resize" = "peak:+16MiB"\n')
    default, per_task = read_gate_settings(str(path))
    assert default == [Threshold("p95", percent=5.0)]
    assert per_task == {"shop.resize": [Threshold("peak", bytes=16 * MIB)]}
    path.write_text("[tool.oomlab.gate]\nfail = 5\n")
    with pytest.raises(BadInput):
        read_gate_settings(str(path))
    assert read_gate_settings(str(tmp_path / "missing.toml")) == ([], {})


# --- load thresholds: absolute bounds on a run's `load` section ---------------------------------
from oomlab.record.load import Counts, Latency, LoadSection, NameFigures, Quantiles  # noqa: E402
from oomlab.workflows.gate.load_checks import ALL, check_load  # noqa: E402
from oomlab.workflows.gate.thresholds import LoadThreshold, parse_load_threshold  # noqa: E402
from oomlab.workflows.gate.verdict import GateResult  # noqa: E402

LOAD = LoadSection(
    counts=Counts(succeeded=300),
    achieved_per_s=38.5,
    offered_per_s=60.0,
    latency=Latency(Quantiles(p95=2.5), Quantiles(p95=0.051), Quantiles(p95=2.6)),
    peak_rss_bytes=Quantiles(max=60 * MIB),
    oom_kills=0,
    by_task={"noop.run": NameFigures(latency=Latency(queue_wait=Quantiles(p95=0.1)))},
)


def test_load_threshold_grammar():
    assert parse_threshold("queue_wait.p95<2s") == LoadThreshold("queue_wait", "p95", "<", 2.0, "queue_wait.p95<2s")
    assert parse_threshold("throughput>=40/s").value == 40.0
    assert parse_threshold("run_time.p99<=250ms").value == 0.25
    assert parse_threshold("oom_kills==0").op == "=="
    assert parse_threshold("peak_rss.max<200MiB").value == 200 * MIB


@pytest.mark.parametrize(
    "text", ["queue_wait<2s", "latency.p95<2s", "throughput.p95>1/s", "queue_wait.p95<fast", "oom_kills==none"]
)
def test_bad_load_thresholds_are_one_sentence(text):
    with pytest.raises(BadInput) as caught:
        parse_load_threshold(text)
    assert "\n" not in caught.value.message


def test_load_checks_fail_past_their_bound_and_when_not_measured():
    thresholds = [parse_threshold(t) for t in ("queue_wait.p95<2s", "throughput>=40/s", "oom_kills==0", "peak:10%")]
    checks = check_load(LOAD, thresholds, {"noop.run": [parse_threshold("queue_wait.p95<1s")]})
    assert [(c.task, c.threshold, c.failed) for c in checks] == [
        (ALL, "queue_wait.p95<2s", True),
        (ALL, "throughput>=40/s", True),
        (ALL, "oom_kills==0", False),
        ("noop.run", "queue_wait.p95<1s", False),
    ]
    assert check_load(None, [parse_threshold("end_to_end.max<1s")], {})[0].failed
    assert check_load(LOAD, [], {"other.task": [parse_threshold("oom_kills==0")]})[0].failed  # never sent: unseen
    assert "38.5/s" in markdown(GateResult(checks=checks)) and "REGRESSION" in markdown(GateResult(checks=checks))


# --- the gate's flow: load bounds with no baseline, and a first baseline that breaks a bound --------
from oomlab.report.gate import cells  # noqa: E402
from oomlab.workflows.gate.flow import gate  # noqa: E402
from oomlab.workflows.gate.stats import stats_of as _stats_of  # noqa: E402


def _gate(tmp_path, baseline, fail, refusal=None):
    current = {"noop.run": _stats_of([MIB])}
    return gate(baseline, current, "r1", fail, str(tmp_path / "none.toml"), refusal=refusal, load=LOAD)


def test_load_bounds_alone_need_no_baseline(tmp_path):
    result = _gate(tmp_path, None, ["queue_wait.p95<2s", "oom_kills==0"])
    assert [(c.threshold, c.failed) for c in result.checks] == [("queue_wait.p95<2s", True), ("oom_kills==0", False)]
    assert not list(tmp_path.iterdir())  # nothing written
    with pytest.raises(BadInput) as caught:  # a memory bound compares with a baseline: one sentence
        _gate(tmp_path, None, ["queue_wait.p95<2s", "peak:10%"])
    assert "peak:10%" in caught.value.message and "--baseline" in caught.value.message
    with pytest.raises(BadInput):  # no --fail at all: the default growth bound needs a baseline
        _gate(tmp_path, None, [])


def test_a_first_run_that_breaks_a_bound_is_not_the_baseline(tmp_path):
    path = tmp_path / "baseline.json"
    result = _gate(tmp_path, str(path), ["queue_wait.p95<1s"])
    assert result.regressions and not path.exists()
    assert "no baseline written" in result.notices[0] and "queue_wait.p95<1s" in result.notices[0]
    assert "saved as the baseline" not in " ".join(result.notices)
    kept = _gate(tmp_path, str(path), ["queue_wait.p95<3s"])
    assert not kept.regressions and path.exists() and "saved as the baseline" in kept.notices[0]


def test_an_unworthy_first_run_still_shows_every_bound(tmp_path):
    result = _gate(tmp_path, str(tmp_path / "b.json"), ["queue_wait.p95<2s"], refusal="the run had 36 OOM kill(s)")
    assert [(c.threshold, c.failed) for c in result.checks] == [("baseline", True), ("queue_wait.p95<2s", True)]
    assert cells(result.checks[1])[3] == "2.5 s"
    assert not (tmp_path / "b.json").exists()
