"""Property tests: whatever a user types or a file holds, oomlab answers with an exit code from its
documented set and one sentence, never a traceback or an "internal error". No worker starts here:
run options go through the CLI's parser and `resolve` (everything checked before a run
begins); gate and baseline commands run whole, in-process, on generated files."""

from __future__ import annotations

import json
import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oomlab.cli.args import run_options
from oomlab.cli.main import main, parser
from oomlab.config import validate
from oomlab.config.options import resolve
from oomlab.config.scenario import load_scenario
from oomlab.config.sizes import MAX_SIZE, parse_size
from oomlab.errors import OomlabError
from oomlab.record.schema import SCHEMA

DOCUMENTED = {0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
FAST = settings(
    max_examples=int(os.environ.get("OOMLAB_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
numberish = st.one_of(
    text,
    st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e309", "", " ", "1.5", "99999999999999999999"]),
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
sizes = st.one_of(
    numberish,
    st.tuples(numberish, st.sampled_from(["", "B", "k", "KiB", "M", "MB", "GiB", "TiB", "x", "%"])).map("".join),
)


def config_outcome(argv: list[str]) -> int:
    """What `oomlab run ARGV` would exit with if it fails before any worker exists; 0 if it would run."""
    try:
        args = parser().parse_args(["run", *argv])
        validate.results_dir(args.results)  # as `oomlab run` does first
        resolve(load_scenario(args.scenario), run_options(args))
    except SystemExit as stop:  # argparse's usage error
        return stop.code if isinstance(stop.code, int) else 2
    except OomlabError as error:
        assert error.message and "\n" not in error.message.strip(), error.message
        return error.exit_code
    return 0


@FAST
@given(sizes)
def test_any_size_is_bytes_or_bad_input(value):
    try:
        size = parse_size(value)
    except OomlabError as error:
        assert error.exit_code == 2
    else:
        assert 0 < size <= MAX_SIZE


@FAST
@given(
    st.sampled_from(["--memory", "--timeout", "--start-timeout", "--sample-hz", "--concurrency", "--tasks"]),
    st.one_of(sizes, numberish),
)
def test_run_options(tmp_path, option, value):
    code = config_outcome(["alloc", option, value, "--results", str(tmp_path)])
    assert code in DOCUMENTED


@FAST
@given(st.sampled_from(["sizes", "over", "every", "hold", "colour", ""]), st.one_of(numberish, st.just(",,")))
def test_scenario_params(tmp_path, name, value):
    assert config_outcome(["alloc", "--param", f"{name}={value}", "--results", str(tmp_path)]) in DOCUMENTED


CELERY_NAMES = [
    "task_serializer",
    "accept_content",
    "worker_prefetch_multiplier",
    "task_acks_late",
    "broker_transport_options",
    "task_time_limit",
    "task_default_queue",
    "worker_max_memory_per_child",
    "no_such_setting",
    "CELERY_TASK_SERIALIZER",
]


@FAST
@given(st.sampled_from(CELERY_NAMES), st.one_of(numberish, st.just('{"a": 1}'), st.just('["json"]'), st.just("true")))
def test_celery_settings(tmp_path, name, value):
    code = config_outcome(["alloc", "--celery", f"{name}={value}", "--results", str(tmp_path)])
    assert code in DOCUMENTED
    if name == "no_such_setting":
        assert code == 2


@FAST
@given(st.one_of(text, st.just("a" * 300), st.just("/proc/x/y"), st.just("")))
def test_results_paths(value):
    assert config_outcome(["alloc", "--results", value]) in DOCUMENTED


# --- files the gate and baseline commands read ----------------------------------------------
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), text),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(text, children, max_size=4)),
    max_leaves=12,
)
stats = st.dictionaries(
    st.sampled_from(["n", "min", "max", "mean", "p50", "p95", "p99", "kills", "extra"]),
    st.one_of(st.integers(-5, 2**40), st.floats(allow_nan=True), text, st.none()),
    max_size=9,
)
baselines = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"schema": st.just("oomlab.baseline/1")},
        optional={"tasks": st.one_of(json_values, st.dictionaries(text, stats, max_size=3)), "source_run": json_values},
    ),
)
task_entries = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.one_of(st.sampled_from(["a", "b"]), json_values),
            "peak_rss_bytes": st.one_of(st.integers(-5, 2**40), json_values),
            "peak_is_exact": st.one_of(st.booleans(), json_values),
            "outcome": st.sampled_from(["succeeded", "killed", "stuck"]),
        },
    ),
)
records = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"schema": st.just(SCHEMA)},
        optional={
            "status": st.sampled_from(["complete", "running", "error"]),
            "run_id": json_values,
            "tasks": st.one_of(json_values, st.lists(task_entries, max_size=4)),
            "kills": st.one_of(json_values, st.lists(st.dictionaries(st.just("task_name"), json_values), max_size=2)),
        },
    ),
)


def real_record() -> dict:
    """A run record as a run writes it: complete, one task with an exact peak."""
    from oomlab.config.options import RunConfig
    from oomlab.record.schema import RunRecord, TaskRecord

    config = RunConfig(scenario="alloc", memory="256MiB", memory_bytes=256 << 20, concurrency=1)
    task = TaskRecord("t1", "a", "", [], 0.0, outcome="succeeded", peak_rss_bytes=5 << 20, peak_is_exact=True)
    return RunRecord(run_id="r1", config=config, status="complete", tasks=[task]).to_json()


def run_cli(capsys, argv: list[str]) -> int:
    code = main(argv)
    err = capsys.readouterr().err
    assert "internal error" not in err and "Traceback" not in err, err
    return code


def write(directory: str, name: str, value) -> str:
    path = os.path.join(directory, name)
    with open(path, "w") as handle:
        json.dump(value, handle) if not isinstance(value, str) else handle.write(value)
    return path


@FAST
@given(baselines, st.one_of(st.none(), records))
def test_gate_on_any_baseline_and_record(capsys, baseline, record):
    """`record` None: a real run record, so the baseline's shape is what is tried."""
    with tempfile.TemporaryDirectory() as directory:
        path = write(directory, "baseline.json", baseline)
        os.makedirs(os.path.join(directory, "run"))
        write(directory, "run/run.json", record if record is not None else real_record())
        code = run_cli(capsys, ["gate", "--baseline", path, "--current", os.path.join(directory, "run")])
        assert code in DOCUMENTED


@FAST
@given(records, st.booleans())
def test_baseline_save_on_any_record(capsys, record, force):
    with tempfile.TemporaryDirectory() as directory:
        os.makedirs(os.path.join(directory, "run"))
        write(directory, "run/run.json", record)
        target = os.path.join(directory, "baseline.json")
        code = run_cli(capsys, ["baseline", "save", os.path.join(directory, "run"), target, *(["--force"] * force)])
        assert code in DOCUMENTED
        assert not os.path.exists(f"{target}.tmp")


def toml_value(value) -> str:
    """A TOML literal for a JSON-like value (inline tables and arrays)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if not isinstance(value, float) or value == value else "nan"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return '""'  # TOML has no null


toml_leaves = st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_infinity=False), text)
toml_values = st.recursive(
    toml_leaves,
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(text, children, max_size=3)),
    max_leaves=8,
)
gate_tables = st.one_of(
    toml_values,
    st.fixed_dictionaries(
        {},
        optional={
            "fail": st.one_of(toml_values, st.lists(st.sampled_from(["peak:10%", "p95:+3MiB", "peak:nan%", "x"]))),
            "tasks": st.one_of(toml_values, st.dictionaries(text, st.lists(st.sampled_from(["peak:5%", "no"])))),
        },
    ),
)


@FAST
@given(st.sampled_from(["tool", "tool.oomlab", "tool.oomlab.gate", "raw"]), gate_tables)
def test_gate_settings_in_any_pyproject(capsys, where, value):
    from oomlab.workflows.gate.baseline import BASELINE_SCHEMA

    if where == "raw":
        document = f"[tool.oomlab]\ngate = {toml_value(value)}\n"
    elif where == "tool.oomlab.gate" and isinstance(value, dict):
        document = f"[{where}]\n" + "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in value.items())
    else:
        document = f"{where.rsplit('.', 1)[-1] if where != 'tool' else 'tool'} = {toml_value(value)}\n"
        if where == "tool.oomlab":
            document = f"[tool]\noomlab = {toml_value(value)}\n"
    with tempfile.TemporaryDirectory() as directory:
        pyproject = write(directory, "pyproject.toml", document)
        baseline = write(directory, "baseline.json", {"schema": BASELINE_SCHEMA, "tasks": {}})
        os.makedirs(os.path.join(directory, "run"))
        write(directory, "run/run.json", real_record())
        argv = ["gate", "--baseline", baseline, "--current", os.path.join(directory, "run"), "--pyproject", pyproject]
        assert run_cli(capsys, argv) in DOCUMENTED


@pytest.mark.parametrize(
    "document",
    ["[tool.oomlab]\ngate = 5\n", "[tool]\noomlab = 1\n", "tool = []\n", '[tool.oomlab.gate]\ntasks = "x"\n'],
)
def test_known_bad_pyprojects_are_one_sentence(capsys, tmp_path, document):
    (tmp_path / "pyproject.toml").write_text(document)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text(json.dumps(real_record()))
    argv = ["gate", "--baseline", str(tmp_path / "b.json"), "--current", str(tmp_path / "run")]
    assert main([*argv, "--pyproject", str(tmp_path / "pyproject.toml")]) == 2
    err = capsys.readouterr().err
    assert "pyproject.toml: [tool" in err and "Traceback" not in err, err


RUN_OPTIONS = [
    "--memory",
    "--concurrency",
    "--pool",
    "--variant",
    "--param",
    "--celery",
    "--max-memory-per-child",
    "--tasks",
    "--broker",
    "--result-backend",
    "--backend",
    "--docker-restart",
    "--oom-scope",
    "--results",
    "--timeout",
    "--start-timeout",
    "--sample-hz",
    "--tracemalloc",
]


@FAST
@given(st.lists(st.one_of(st.sampled_from(RUN_OPTIONS), numberish, sizes), max_size=8))
def test_any_run_argument_list(tmp_path, tokens):
    """Whole argument lists, options and values in any order: refused with a documented code before a
    worker exists, or a configuration a run would start from."""
    assert config_outcome(["leak", *tokens, "--results", str(tmp_path)]) in DOCUMENTED


@FAST
@given(st.lists(st.one_of(st.sampled_from(["gate", "baseline", "save", "--force", "--fail", "--current"]), text)))
def test_any_gate_or_baseline_argument_list(capsys, tmp_path, tokens):
    try:
        code = run_cli(capsys, ["gate", "--baseline", str(tmp_path / "b.json"), *tokens])
    except SystemExit as stop:
        code = stop.code
    assert code in DOCUMENTED
