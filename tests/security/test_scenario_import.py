"""A scenario file's import-time code cannot hang oomlab, end it with its own code, keep it from
exiting, or leave a process behind it: each is one sentence and exit 6, in bounded time (the file is
imported first in a vetting child, oomlab.config.scenario_vetting)."""

from __future__ import annotations

import os
import secrets
import time

import pytest

from tests.conftest import TIME_SCALE

ALLOC = "from oomlab.scenarios import alloc as _alloc\napp, plan, PARAMS = _alloc.app, _alloc.plan, _alloc.PARAMS\n"


def _processes_with(marker: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


def _refused(result, code, phrase):
    assert result.code == code, (result.code, result.stderr)
    assert phrase in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not result.run_dir, "nothing was started"


def _sleep(marker: str) -> str:
    """A command that runs an hour and is found by its marker (a number of seconds nobody else uses)."""
    return f"os.execvp('sleep', ['sleep', '{marker}'])"


@pytest.mark.parametrize(
    "name, body, phrase",
    [
        ("loops", "while True:\n    pass\n", "did not finish importing within 2 s"),
        ("waits", "import time\ntime.sleep(3600)\n", "did not finish importing within 2 s"),
        (
            "threads",
            "import threading, time\nthreading.Thread(target=time.sleep, args=(3600,), name='poller').start()\n",
            "left a thread running at import ('poller', not a daemon)",
        ),
        ("exits", "import os\nos._exit(0)\n", "exited with code 0 during import"),
        ("kills", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "was killed by signal 9 during import"),
        ("interrupts", "raise KeyboardInterrupt\n", "failed to import: KeyboardInterrupt (/"),
    ],
)
def test_import_time_code_is_one_sentence_in_bounded_time(oomlab, tmp_path, name, body, phrase):
    path = tmp_path / f"{name}.py"
    path.write_text(ALLOC + body)
    started = time.monotonic()
    result = oomlab("run", str(path), env={"OOMLAB_IMPORT_TIMEOUT": "2"}, timeout=60)
    _refused(result, 6, f"scenario {name} {phrase}")
    assert time.monotonic() - started < 30 * TIME_SCALE


@pytest.mark.parametrize(
    "name, body",
    [
        ("forks", "import os\nif os.fork() == 0:\n    {sleep}\n"),
        (
            "daemonizes",
            "import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        {sleep}\n    os._exit(0)\n",
        ),
        ("spawns", "import subprocess\nsubprocess.Popen(['sleep', '{marker}'])\n"),
    ],
)
def test_a_process_started_at_import_does_not_outlive_oomlab(oomlab, tmp_path, name, body):
    marker = f"3600.{secrets.randbelow(10**8)}"
    path = tmp_path / f"{name}.py"
    path.write_text(ALLOC + body.format(sleep=_sleep(marker), marker=marker))
    result = oomlab("run", str(path), timeout=60)
    _refused(result, 6, f"scenario {name} left a process running at import (pid ")
    if name == "spawns":  # a fork may be found before it has become `sleep`
        assert f"sleep {marker}" in result.stderr
    time.sleep(0.2)
    assert not _processes_with(marker), "a process the scenario started at import outlived oomlab"


@pytest.mark.parametrize(
    "name, body, phrase",
    [
        (
            "app5",
            "from oomlab.scenarios.alloc import plan, PARAMS\napp = 5\n",
            "app5's app is an int, not a Celery app",
        ),
        ("noplan", "from oomlab.scenarios.alloc import app\nplan = 'tomorrow'\n", "plan is a str, not a function"),
        ("params5", ALLOC + "PARAMS = 5\n", "params5's PARAMS is an int, not a list of Param"),
        ("paramstr", ALLOC + "PARAMS = ['sizes']\n", "PARAMS holds a str, not a Param"),
        ("defaults", ALLOC + "DEFAULTS = [('memory', '1GiB')]\n", "DEFAULTS is a list, not a dict"),
        ("variants", ALLOC + "VARIANTS = 'bad'\n", "VARIANTS is a str, not a list of Variant"),
    ],
)
def test_what_a_scenario_defines_has_the_shape_oomlab_reads(oomlab, tmp_path, name, body, phrase):
    path = tmp_path / f"{name}.py"
    path.write_text(body)
    _refused(oomlab("run", str(path), timeout=60), 6, phrase)


def test_an_unknown_setting_in_celery_conf_is_refused(oomlab, tmp_path):
    path = tmp_path / "typo.py"
    path.write_text(ALLOC + "CELERY_CONF = {'worker_prefetch_multiplyer': 1}\n")
    _refused(
        oomlab("run", str(path), timeout=60),
        2,
        "scenario typo's CELERY_CONF sets 'worker_prefetch_multiplyer': Celery has no such setting "
        "(did you mean worker_prefetch_multiplier?)",
    )


def test_a_bad_import_timeout_is_refused(oomlab, tmp_path):
    path = tmp_path / "fine.py"
    path.write_text(ALLOC)
    _refused(oomlab("run", str(path), env={"OOMLAB_IMPORT_TIMEOUT": "nan"}, timeout=60), 2, "OOMLAB_IMPORT_TIMEOUT")


@pytest.mark.integration
def test_plan_returning_none_is_a_scenario_failure_and_a_thread_it_leaves_does_not_hold_oomlab(oomlab, tmp_path):
    path = tmp_path / "planless.py"
    path.write_text(
        "import threading, time\n"
        "from oomlab.scenarios.alloc import app, PARAMS\n"
        "DEFAULTS = {'memory': '256MiB', 'tasks': 1, 'concurrency': 1}\n"
        "def plan(ctx):\n"
        "    threading.Thread(target=time.sleep, args=(3600,)).start()\n"
        "    return None\n"
    )
    result = oomlab("run", str(path), timeout=120)
    assert result.code == 6, result.stderr
    assert "scenario planless's plan() returned None, not a Plan" in result.stderr
    assert "Traceback" not in result.stderr
