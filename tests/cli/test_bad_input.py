"""Every bad input gets one sentence and its own exit code, never a traceback."""

from __future__ import annotations

import os
import subprocess

import pytest

pytestmark = pytest.mark.integration


def _one_sentence(result, code, phrase):
    assert result.code == code, (result.code, result.stderr)
    assert phrase in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unknown_scenario(oomlab):
    _one_sentence(oomlab("run", "nope"), 2, "unknown scenario 'nope'; built-in scenarios: alloc")


def test_a_run_directory_given_as_the_scenario_is_named_as_one(oomlab, tmp_path):
    run_dir = tmp_path / "20261207-154330-billing_scenario-44dbcd"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{}")
    said = f"{run_dir} is a run's directory, not a scenario: give the scenario that run was given"
    _one_sentence(oomlab("recommend", str(run_dir), "--memory", "256MiB"), 2, said)


def test_bad_size(oomlab):
    _one_sentence(oomlab("run", "alloc", "--memory", "lots"), 2, "'lots' is not a memory size")


def test_a_size_without_a_unit_is_refused_before_the_run(oomlab, tmp_path):
    result = oomlab("run", "alloc", "--memory", "256", "--results", str(tmp_path / "results"))
    _one_sentence(result, 2, "--memory 256 has no unit: write 256MiB")
    assert not (tmp_path / "results").exists()
    gate = oomlab("gate", "--current", str(tmp_path), "--fail", "peak_rss.p95<200")
    _one_sentence(gate, 2, "200 has no unit: write 200MiB")


def test_unknown_param(oomlab):
    _one_sentence(oomlab("run", "alloc", "--param", "colour=red"), 2, "has no parameter 'colour'")


def test_scenario_import_error(oomlab, tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import module_that_does_not_exist\napp = None\ndef plan(ctx): pass\n")
    _one_sentence(oomlab("run", str(path)), 6, "scenario broken failed to import: ModuleNotFoundError")


def test_a_scenario_in_a_subfolder_is_told_its_package_in_the_working_directory_is_not_on_the_path(tmp_path):
    from tests.conftest import oomlab_cmd

    (tmp_path / "billing").mkdir()
    (tmp_path / "billing" / "__init__.py").write_text("")
    (tmp_path / "scenarios").mkdir()
    scenario = tmp_path / "scenarios" / "billing_load.py"
    scenario.write_text("from oomlab import Plan\n\napp = 'billing.celery:app'\ndef plan(ctx): return Plan([])\n")
    done = subprocess.run(oomlab_cmd("run", str(scenario)), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 6 and done.stderr.count("\n") == 1, done.stderr
    assert (
        f"billing is in the working directory, which is not on the path (only the scenario file's folder "
        f"{tmp_path / 'scenarios'} is): put the file beside billing, or install your project" in done.stderr
    ), done.stderr


def test_an_app_import_error_names_the_users_file_and_line(oomlab, tmp_path):
    """The innermost frame outside oomlab: the app module's raising line, or the scenario's `app =`
    line when the module is not there at all; never oomlab's own file."""
    (tmp_path / "shopmod.py").write_text("import os\n\nraise RuntimeError('no settings')\n")
    typo = tmp_path / "typo_app.py"
    typo.write_text("from oomlab import Plan\n\napp = 'shop.celry:app'\ndef plan(ctx): return Plan([])\n")
    broken = tmp_path / "broken_app.py"
    broken.write_text("app = 'shopmod:app'\ndef plan(ctx): pass\n")
    missing = oomlab("run", str(typo))
    _one_sentence(missing, 6, "scenario typo_app failed to import its app shop.celry:app: ModuleNotFoundError")
    assert f"({typo}, line 3)" in missing.stderr
    raising = oomlab("run", str(broken))
    _one_sentence(raising, 6, "failed to import its app shopmod:app: RuntimeError: no settings")
    assert f"({tmp_path / 'shopmod.py'}, line 3)" in raising.stderr and "scenario.py" not in raising.stderr


def test_broker_unreachable(oomlab, tmp_path):
    results = tmp_path / "results"
    result = oomlab("run", "alloc", "--broker", "redis://127.0.0.1:1/0", "--results", str(results))
    _one_sentence(result, 5, "broker redis://127.0.0.1:1/0 is unreachable")
    assert not results.exists() or not [n for n in os.listdir(results) if not n.startswith(".")], (
        "a run that cannot reach its broker makes no run directory"
    )
    assert result.stdout == ""


def test_no_permission_for_a_cgroup(oomlab, tmp_path):
    readonly = tmp_path / "ro"
    readonly.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(readonly)], check=True)
    try:
        result = oomlab("run", "alloc", env={"OOMLAB_CGROUP_PARENT": str(readonly / "oomlab")})
    finally:
        subprocess.run(["umount", str(readonly)], check=True)
    _one_sentence(result, 3, "cannot create a memory cgroup")
    assert "as root" in result.stderr and "Delegate=yes" in result.stderr


def test_compare_with_a_variant(oomlab):
    _one_sentence(oomlab("run", "leak", "--compare", "--variant", "bad"), 2, "--compare runs every variant")


def test_unknown_variant(oomlab):
    _one_sentence(oomlab("run", "leak", "--variant", "good"), 2, "scenario leak has no variant 'good'")


def test_scenario_plan_that_fails_stops_the_run_cleanly(oomlab):
    result = oomlab("run", "unbuffered-select", "--param", "database_url=postgresql://postgres@127.0.0.1:1/test")
    _one_sentence(result, 6, "scenario unbuffered-select failed in plan(): OperationalError")
    assert result.record["status"] == "error"
    from tests.conftest import assert_nothing_left

    assert_nothing_left(result.record["run_id"])


@pytest.mark.parametrize(
    "args, phrase",
    [
        (["--only", "acks=sometimes"], "--acks takes early, late"),
        (["--only", "colour=red"], "--only takes AXIS=VALUES pairs"),
        (["--broker", "kafka"], "--broker takes redis, rabbitmq, quorum"),
        (["--jobs", "0"], "--jobs must be positive"),
        (["--memory", "lots"], "'lots' is not a memory size"),
    ],
)
def test_lab_bad_selection(oomlab, tmp_path, args, phrase):
    _one_sentence(oomlab("lab", "delivery", *args, "--results", str(tmp_path)), 2, phrase)


def test_lab_rabbitmq_unreachable(oomlab, tmp_path):
    result = oomlab(
        "lab",
        "delivery",
        "--broker",
        "quorum",
        "--rabbitmq-url",
        "amqp://guest:guest@127.0.0.1:1//",
        "--results",
        str(tmp_path),
    )
    _one_sentence(result, 5, "broker amqp://guest:***@127.0.0.1:1// is unreachable")  # no password shown
    assert not list(tmp_path.iterdir()), "nothing is started, so nothing is written"


# --- structurally bad input: one sentence and exit 2 (in-process: no worker starts) ---
def _in_process(capsys, *argv: str) -> tuple[int, str]:
    from oomlab.cli.main import main

    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    return code, err


def _good_run(tmp_path, **fields):
    """A run directory holding a real run record (status complete, one task with an exact peak)."""
    from oomlab.config.options import RunConfig
    from oomlab.record.schema import KillRecord, RunRecord, TaskRecord, write_json_atomic

    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    task = TaskRecord("t1", "t", "", [], 0.0, outcome="succeeded", peak_rss_bytes=5 << 20, peak_is_exact=True)
    kills = [KillRecord(1, "child", None, "t", "SIGKILL", "oom", 0.0, "kmsg") for _ in range(fields.pop("kills", 0))]
    tasks = [TaskRecord("t2", "t", "", [], 0.0, outcome=o) for o in fields.pop("outcomes", [])]
    config = RunConfig(scenario="alloc", memory="256MiB", memory_bytes=256 << 20, concurrency=1)
    status = fields.pop("status", "complete")
    record = RunRecord(run_id="r1", config=config, status=status, tasks=[task, *tasks], kills=kills, **fields)
    write_json_atomic(str(run / "run.json"), record.to_json())
    return run


@pytest.mark.parametrize(
    "baseline, phrase",
    [
        ("[]", "is not an oomlab baseline"),
        ('{"schema": "oomlab.baseline/1"}', "has no 'tasks' object"),
        ('{"schema": "oomlab.baseline/1", "tasks": {"t": {"n": "x"}}}', "does not hold the statistics"),
        ('{"schema": "oomlab.baseline/1", "tasks": []}', "has no 'tasks' object"),
    ],
)
def test_bad_baseline_files(capsys, tmp_path, baseline, phrase):
    (tmp_path / "b.json").write_text(baseline)
    code, err = _in_process(
        capsys, "gate", "--baseline", str(tmp_path / "b.json"), "--current", str(_good_run(tmp_path))
    )
    assert code == 2 and phrase in err


@pytest.mark.parametrize(
    "record, phrase",
    [("file", "is a file, not a run directory"), ('{"tasks": [{"peak_rss_bytes": 1}]}', "not an oomlab run record")],
)
def test_bad_current(capsys, tmp_path, record, phrase):
    if record == "file":
        current = tmp_path / "a-file"
        current.write_text("{}")
    else:
        current = tmp_path / "run"
        current.mkdir()
        (current / "run.json").write_text(record)
    code, err = _in_process(capsys, "gate", "--baseline", str(tmp_path / "b.json"), "--current", str(current))
    assert code == 2 and phrase in err


@pytest.mark.parametrize(
    "argv, phrase",
    [
        (["--memory", ""], "--memory is empty"),
        (["--memory", "99999999999999999999TiB"], "larger than any memory limit"),
        (["--timeout", "nan"], "--timeout must be a positive number of seconds, not nan"),
        (["--timeout", "inf"], "--timeout must be a positive number of seconds, not inf"),
        (
            ["--celery", "task_serializer=nope"],
            "task_serializer='nope' is refused; oomlab accepts only json or msgpack",
        ),
        (["--celery", "task_serialiser=json"], "Celery has no such setting (did you mean task_serializer?)"),
        (["--celery", "worker_prefetch_multiplier=many"], "Celery takes a whole number here"),
        (["--param", "sizes="], "give one value or more"),
        (["--param", "hold=nan"], "it must be finite"),
        (["--results", "FILE"], "is a file, not a directory"),
        (["--results", "x" * 300], "the path is too long"),
    ],
)
def test_run_options_refused_before_anything_starts(capsys, tmp_path, argv, phrase):
    (tmp_path / "FILE").write_text("")
    argv = [str(tmp_path / "FILE") if a == "FILE" else a for a in argv]
    if "--results" not in argv:
        argv += ["--results", str(tmp_path / "results")]
    code, err = _in_process(capsys, "run", "alloc", *argv)
    assert code == 2 and phrase in err, err
    assert not (tmp_path / "results").exists(), "nothing is written for a refused run"


def test_unwritable_results_is_exit_10(tmp_path):
    readonly = tmp_path / "ro"
    readonly.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(readonly)], check=True)
    try:
        from oomlab.cli.main import main

        assert main(["run", "alloc", "--results", str(readonly / "results")]) == 10
    finally:
        subprocess.run(["umount", str(readonly)], check=True)


def test_gate_threshold_nan_is_refused(capsys, tmp_path):
    argv = ["gate", "--baseline", str(tmp_path / "b.json"), "--current", str(_good_run(tmp_path))]
    code, err = _in_process(capsys, *argv, "--fail", "peak:nan%")
    assert code == 2 and "finite percentage" in err


# --- a baseline is never lost ---
def test_baseline_save_never_overwrites_without_force(capsys, tmp_path):
    run = _good_run(tmp_path)
    target = tmp_path / "baseline.json"
    assert _in_process(capsys, "baseline", "save", str(run), str(target))[0] == 0
    saved = target.read_text()
    failed = tmp_path / "failed"
    failed.mkdir()
    (failed / "run.json").write_text((run / "run.json").read_text().replace('"complete"', '"worker_start_failed"'))
    code, err = _in_process(capsys, "baseline", "save", str(failed), str(target))
    assert code == 2 and "already exists; give --force" in err
    assert target.read_text() == saved
    code, err = _in_process(capsys, "baseline", "save", str(failed), str(target), "--force")
    assert code == 0  # forced: the user asked for it


@pytest.mark.parametrize(
    "fields, phrase",
    [
        ({"status": "worker_start_failed"}, "status is 'worker_start_failed'"),
        ({"status": "running"}, "status is 'running'"),
        ({"kills": 1}, "had 1 OOM kill"),
        ({"outcomes": ["never_started"]}, "did not succeed (never_started)"),
    ],
)
def test_baseline_save_refuses_an_unworthy_run(capsys, tmp_path, fields, phrase):
    code, err = _in_process(capsys, "baseline", "save", str(_good_run(tmp_path, **fields)), str(tmp_path / "b.json"))
    assert code == 2 and phrase in err
    assert not (tmp_path / "b.json").exists()


def test_the_gate_never_makes_a_failed_run_its_first_baseline(capsys, tmp_path):
    from oomlab.cli.main import main

    run = _good_run(tmp_path, status="worker_start_failed")
    code = main(["gate", "--baseline", str(tmp_path / "b.json"), "--current", str(run)])
    out = capsys.readouterr().out
    assert code == 7, out  # the gate fails: a run that did not do its work is no baseline and no pass
    assert "cannot be the first" in out and "worker_start_failed" in out
    assert not (tmp_path / "b.json").exists()


def test_baseline_save_never_writes_over_a_run_record_or_into_a_directory(capsys, tmp_path):
    run = _good_run(tmp_path)
    record = (run / "run.json").read_text()
    code, err = _in_process(capsys, "baseline", "save", str(run), str(run / "run.json"), "--force")
    assert code == 2 and "is a run record" in err and (run / "run.json").read_text() == record
    code, err = _in_process(capsys, "baseline", "save", str(run), str(tmp_path), "--force")
    assert code == 2 and "is a directory" in err
    assert not os.path.exists(f"{tmp_path}.tmp")


# --- each failure's own exit code and words, with real workers ---
def test_teardown_error_exits_6(oomlab, tmp_path):
    path = tmp_path / "tears.py"
    path.write_text(
        "from oomlab.scenarios.alloc import *  # noqa\n"
        "from oomlab.scenarios import alloc as _alloc\n"
        "app, plan, PARAMS = _alloc.app, _alloc.plan, _alloc.PARAMS\n"
        "DEFAULTS = {'memory': '256MiB', 'tasks': 1, 'concurrency': 1}\n"
        "def teardown(ctx):\n    raise RuntimeError('could not drop the table')\n"
    )
    result = oomlab("run", str(path), "--param", "over=0")
    _one_sentence(result, 6, "failed in teardown(): RuntimeError: could not drop the table")
    assert result.record["status"] == "error"
    from tests.conftest import assert_nothing_left

    assert_nothing_left(result.record["run_id"])


def test_sys_exit_at_import_is_a_scenario_failure(oomlab, tmp_path):
    path = tmp_path / "exits.py"
    path.write_text("import sys\nsys.exit(3)\n")
    _one_sentence(oomlab("run", str(path)), 6, "scenario exits failed to import: SystemExit: 3")


def test_a_result_backend_failure_is_not_called_the_broker(oomlab):
    result = oomlab("run", "alloc", "--result-backend", "redis://127.0.0.1:1/0")
    _one_sentence(result, 5, "result backend redis://127.0.0.1:1/0 is unreachable")
    assert "omit --result-backend" in result.stderr


def test_a_limit_below_the_interpreter_says_the_kernel_killed_it(oomlab):
    result = oomlab("run", "alloc", "--memory", "1MiB")
    # killed before Python ran (no probe, an empty log) or just after: the kill is said either way
    _one_sentence(result, 4, "OOM-killed")
    assert "see worker.log" not in result.stderr


def test_a_ctrl_c_while_oomlab_loads_is_an_ordinary_interrupt(capsys, monkeypatch):
    """Ctrl-C while Celery and rich are imported (the first second of every command): exit 130 and one
    line. A Ctrl-C before the interpreter reaches oomlab's code (site imports) is Python's own."""
    import sys

    from oomlab.cli.main import main

    class InterruptedImport:
        def find_spec(self, name, path=None, target=None):
            if name == "oomlab.cli.commands.scenarios":  # the one command module `oomlab scenarios` loads
                raise KeyboardInterrupt
            return None

    for name in [n for n in sys.modules if n.startswith("oomlab.cli.commands")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [InterruptedImport(), *sys.meta_path])
    assert main(["scenarios"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("oomlab: interrupted") and "Traceback" not in err


@pytest.mark.services
def test_compare_on_one_broker_url(oomlab):
    """Every variant's run on the same --broker: each run's client gets a pool of its own (kombu keeps
    pools per URL, process-wide; the first run's closed one was handed to the second)."""
    result = oomlab("run", "large-args", "--compare", "--tasks", "2", "--broker", "redis://127.0.0.1:6379/0")
    assert result.code == 0, result.stderr
    assert "Acquire on closed pool" not in result.stderr and "internal error" not in result.stderr
    assert "compare-" in result.stdout
