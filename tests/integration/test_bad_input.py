"""Every bad input gets one sentence and its own exit code, never a traceback."""

from __future__ import annotations

import subprocess

import pytest

pytestmark = pytest.mark.integration


def _one_sentence(result, code, phrase):
    assert result.code == code, (result.code, result.stderr)
    assert phrase in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unknown_scenario(oomlab):
    _one_sentence(oomlab("run", "nope"), 2, "unknown scenario 'nope'; built-in scenarios: alloc")


def test_bad_size(oomlab):
    _one_sentence(oomlab("run", "alloc", "--memory", "lots"), 2, "'lots' is not a memory size")


def test_unknown_param(oomlab):
    _one_sentence(oomlab("run", "alloc", "--param", "colour=red"), 2, "has no parameter 'colour'")


def test_scenario_import_error(oomlab, tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import module_that_does_not_exist\napp = None\ndef plan(ctx): pass\n")
    _one_sentence(oomlab("run", str(path)), 6, "scenario broken failed to import: ModuleNotFoundError")


def test_broker_unreachable(oomlab):
    _one_sentence(
        oomlab("run", "alloc", "--broker", "redis://127.0.0.1:1/0"), 5, "broker redis://127.0.0.1:1/0 is unreachable"
    )


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
