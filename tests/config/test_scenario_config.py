"""How a run's configuration is resolved: command line over variant over scenario."""

from __future__ import annotations

import pytest
from oomlab.cli.args import run_options
from oomlab.cli.main import parser
from oomlab.config.options import RunOptions, resolve
from oomlab.config.scenario import builtin_names, check_scenario_defaults, load_scenario
from oomlab.errors import BadInput


def config_for(*argv: str):
    args = parser().parse_args(["run", *argv])
    return resolve(load_scenario(args.scenario), run_options(args))


# scenarios that measure something rather than show a problem with its fix: a limit probe, the delivery
# lab's victim, --profile's known sites, load runs' no-op, file/shmem/anon side by side, capacity's mixes
INSTRUMENTS = (
    "alloc",
    "oom-victim",
    "memory-sites",
    "noop",
    "memory-kinds",
    "capacity-mix",
    "pool-choice",
    "workflows",
)


def test_every_builtin_scenario_has_bad_and_fixed_and_a_description():
    for name in builtin_names():
        scenario = load_scenario(name)
        assert scenario.description
        if name not in INSTRUMENTS:
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
    from oomlab.cli.main import main

    monkeypatch.setenv("COLUMNS", "200")  # no wrapping inside the table's cells
    assert main(["scenarios", "leak"]) == 0
    shown = capsys.readouterr().out
    assert "worker_max_memory_per_child=81920" in shown and "leak_mib" in shown and "MiB each call leaks" in shown


def test_every_front_end_resolves_through_the_same_rules():
    alloc = load_scenario("alloc")
    from_code = resolve(alloc, RunOptions(concurrency=3, params={"sizes": [8, 16]}))
    from_cli = config_for("alloc", "--concurrency", "3", "--param", "sizes=8,16")
    assert from_code == from_cli
    assert from_code.memory == "256MiB" and from_code.tasks == 8  # the scenario's DEFAULTS


@pytest.mark.parametrize(
    ("argv", "sentence"),
    [
        (["--concurrency", "0"], "--concurrency must be at least 1"),
        (["--tasks", "0"], "--tasks must be at least 1"),
        (["--timeout", "nan"], "--timeout must be a positive number of seconds"),
        (["--sample-hz", "-1"], "--sample-hz must be a positive number"),
        (["--memory", "lots"], "is not a memory size"),
        (["--memory", ":\n"], r"^--memory ':\\n' is not a memory size"),  # one line: the newline shown escaped
        (["--docker-restart", "always"], "--docker-restart applies to --placement docker"),
    ],
)
def test_bad_settings_are_one_sentence(argv, sentence):
    with pytest.raises(BadInput, match=sentence):
        config_for("alloc", *argv)


def test_a_typo_in_a_scenarios_defaults_is_refused():
    with pytest.raises(BadInput, match="'memroy', which is not a run setting"):
        check_scenario_defaults("scenario x's DEFAULTS", {"memroy": "1GiB"})
    check_scenario_defaults("scenario x's DEFAULTS", {"memory": "1GiB", "concurrency": 2})


def test_backend_is_a_deprecated_alias_of_placement(capsys):
    assert config_for("alloc", "--backend", "cgroup").placement == "cgroup"
    assert "--backend is deprecated" in capsys.readouterr().err
    with pytest.raises(BadInput, match="disagree"):
        config_for("alloc", "--backend", "cgroup", "--placement", "docker")
