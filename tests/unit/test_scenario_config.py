"""How a run's configuration is resolved: command line over variant over scenario."""

from __future__ import annotations

import pytest

from harness.cli import parser
from harness.commands.run import build_config
from harness.errors import BadInput
from harness.scenario import builtin_names, load_scenario


def config_for(*argv: str):
    return build_config(parser().parse_args(["run", *argv]))[1]


def test_every_builtin_scenario_has_bad_and_fixed_and_a_description():
    for name in builtin_names():
        scenario = load_scenario(name)
        assert scenario.description
        if name not in (
            "alloc",
            "oom-victim",
            "memory-kinds",
        ):  # instruments (a limit probe, the delivery lab's victim), not problems with a fix
            assert list(scenario.variants)[:2] == ["bad", "fixed"], name


def test_variant_defaults_apply_unless_the_command_line_says_otherwise():
    assert config_for("startup", "--variant", "low-concurrency").concurrency == 1
    assert config_for("startup", "--variant", "low-concurrency", "--concurrency", "3").concurrency == 3
    assert config_for("startup", "--variant", "threads").pool == "threads"
    assert config_for("startup").variant == "bad"


def test_variant_celery_settings_and_command_line_overrides():
    assert config_for("leak", "--variant", "fixed").celery_conf == {"worker_max_memory_per_child": 80 * 1024}
    conf = config_for(
        "leak",
        "--variant",
        "fixed",
        "--max-memory-per-child",
        "64MiB",
        "--celery",
        "worker_prefetch_multiplier=1",
        "--celery",
        "task_acks_late=true",
    ).celery_conf
    assert conf == {"worker_max_memory_per_child": 64 * 1024, "worker_prefetch_multiplier": 1, "task_acks_late": True}


def test_hyphen_and_underscore_names_load_the_same_scenario():
    assert load_scenario("large_args").name == load_scenario("large-args").name == "large-args"


def test_tracemalloc_is_on_where_the_scenario_asks_for_it():
    assert config_for("native-alloc").tracemalloc is True
    assert config_for("alloc").tracemalloc is False
    assert config_for("alloc", "--tracemalloc").tracemalloc is True


def test_unknown_variant_is_one_sentence():
    with pytest.raises(BadInput, match="scenario leak has no variant 'good' \\(it has: bad, fixed\\)"):
        config_for("leak", "--variant", "good")


def test_scenarios_command_shows_one_scenario_in_full(capsys, monkeypatch):
    from harness.cli import main

    monkeypatch.setenv("COLUMNS", "200")  # no wrapping inside the table's cells
    assert main(["scenarios", "leak"]) == 0
    shown = capsys.readouterr().out
    assert "worker_max_memory_per_child=81920" in shown and "leak_mib" in shown and "MiB each call leaks" in shown
