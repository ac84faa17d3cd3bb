"""oomlab's pytest plugin (entry point `pytest11`): a real worker of your Celery app under a memory
limit as the `oomlab_worker` fixture, `@pytest.mark.peak_rss_below(...)`, and the gate on task
memory at the end of the session (`--oomlab-baseline PATH --oomlab-fail peak:10%`).

Nothing starts unless a test asks for the fixture or the gate is on. pytest loads this module in
every session of every project that installs oomlab, so at load it imports only what registers
options, markers and fixtures; the worker machinery (session, runner, Celery, kombu, Redis) is
imported inside the fixture and hooks when a test asks for it (tests/testing/test_light_load.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from typing import TYPE_CHECKING, NoReturn

import pytest
from oomlab.errors import OomlabError
from oomlab.testing.markers import MARKERS
from oomlab.trust import temp_dir

if TYPE_CHECKING:
    from oomlab.config.options import Placement
    from oomlab.testing.session import WorkerSession
    from oomlab.workflows.gate.verdict import GateResult

_OPTIONS = {  # name: (default, help), each as --oomlab-NAME and as the ini key oomlab_NAME
    "app": (None, "your Celery app as 'module:attribute' (e.g. proj.celery:app)"),
    "memory": ("512MiB", "the worker's memory limit"),
    "concurrency": ("1", "the worker's pool size"),
    "pool": ("prefork", "the worker's pool: prefork, solo, threads, gevent or eventlet"),
    "broker": (None, "a broker URL instead of the embedded Redis"),
    "results": ("results", "where run records go"),
    "placement": (
        "cgroup",
        "where the worker runs: cgroup (a memory cgroup of oomlab's own), or docker (a container with "
        "--memory, started through testcontainers)",
    ),
    "limits": (None, "deprecated: the old name of oomlab_placement"),
    "max_oom_redeliveries": (
        "3",
        "stop (revoke) a task id OOM-killed this many times, a poison message; 0: never",
    ),
    "profile": (
        None,
        "memray on these tasks in the worker (NAME,NAME or all): a failing marker names the lines that held the memory",
    ),
}
_PASSED_TASKS = pytest.StashKey[list]()  # the tasks a marked test ran
_RUN_DIRS = pytest.StashKey[list]()  # every worker session's run directory
_GATE: pytest.StashKey[GateResult] = pytest.StashKey()  # the gate's result, for the terminal summary
_SHARED_DIR = pytest.StashKey[str]()  # under xdist: where each worker leaves its run directories
_SHARED_KEY = "oomlab_run_dirs_dir"  # its path in each xdist worker's workerinput
_GATE_PAGE: pytest.StashKey[str] = pytest.StashKey()  # "report: RUN_DIR/gate.html", for the summary


_CLI_FLAG = re.compile(r"--(" + "|".join(n.replace("_", "-") for n in _OPTIONS) + r"|fail|baseline)(?![-\w])")


def in_pytest_terms(message: str) -> str:
    """A sentence written for the command line, with each of its options as the pytest option and
    ini key that set it here (`--memory` -> `--oomlab-memory / oomlab_memory`; the app -> oomlab_app)."""

    def option(match: re.Match) -> str:
        name = match.group(1).replace("-", "_")
        flag = f"--oomlab-{match.group(1)}"
        return f"{flag} / oomlab_{name}" if name in _OPTIONS else flag

    message = re.sub(r"^app (\S+) failed", r"oomlab_app \1 failed", message)  # the app named in the ini
    return _CLI_FLAG.sub(option, message)


def _help(text: str) -> str:
    """argparse formats every help string with `%`, so a bare `%` ("peak:10%") crashes `pytest --help`."""
    return text.replace("%", "%%")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("oomlab", "oomlab: task memory in a real Celery worker under a memory limit")
    for name, (default, text) in _OPTIONS.items():
        group.addoption(
            f"--oomlab-{name.replace('_', '-')}",
            dest=f"oomlab_{name}",
            default=None,
            help=_help(f"{text} (default {default})"),
        )
        parser.addini(f"oomlab_{name}", text, default=default)
    group.addoption(
        "--oomlab-baseline",
        metavar="PATH",
        help="gate task memory against this baseline at the end of the session (written on first use)",
    )
    group.addoption(
        "--oomlab-fail",
        action="append",
        default=[],
        metavar="STAT:N%",
        help=_help(
            "a gate threshold, e.g. peak:10% or peak:+32MiB, or a load bound such as queue_wait.p95<2s (repeatable)"
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "peak_rss_below(limit): every task the test runs in the oomlab worker "
        'peaks below limit (exact VmHWM per task), e.g. "256 MiB"',
    )
    config.stash[_RUN_DIRS] = []


def _running_session() -> WorkerSession | None:
    """The running worker session, if any test started one: never imports the worker machinery."""
    module = sys.modules.get("oomlab.testing.session")
    return module.WorkerSession.current() if module is not None else None


def _current_session() -> WorkerSession | None:
    """The running worker session; imported here, not at load, so tests that use no worker pay nothing."""
    from oomlab.testing.session import WorkerSession

    return WorkerSession.current()


def _option(config: pytest.Config, name: str):
    return config.getoption(f"oomlab_{name}") or config.getini(f"oomlab_{name}")


def _placement(config: pytest.Config) -> Placement:
    old = _option(config, "limits")
    if old:
        warnings.warn("oomlab_limits is deprecated: use oomlab_placement", DeprecationWarning, stacklevel=2)
    return _option(config, "placement") if not old or config.getoption("oomlab_placement") else old


@pytest.fixture(scope="session")
def oomlab_worker(request: pytest.FixtureRequest):
    """A real worker of your app under a memory limit for the whole session; send tasks through
    your app as usual (it is pointed at the worker's broker while the fixture lives)."""
    from oomlab.testing.session import WorkerOptions, WorkerSession

    config = request.config
    app = _option(config, "app")
    if not app:
        _refuse(
            'oomlab_worker needs your Celery app: set oomlab_app = "module:attribute" '
            "in the pytest ini options, or pass --oomlab-app"
        )
    options = WorkerOptions(
        app=app,
        memory=_option(config, "memory"),
        concurrency=int(_option(config, "concurrency")),
        pool=_option(config, "pool"),
        broker=_option(config, "broker"),
        results_dir=_option(config, "results"),
        placement=_placement(config),
        profile=_profiled_tasks(request),
        max_oom_redeliveries=_whole_number(config, "max_oom_redeliveries"),
    )
    failure: str | None = None
    try:
        session = WorkerSession(options).start()
    except OomlabError as error:
        failure = in_pytest_terms(error.message)  # said outside the except: no chained exception shown
    if failure is not None:
        _refuse(f"oomlab could not start the worker: {failure}")
    config.stash[_RUN_DIRS].append(session.run_dir)
    yield session
    session.stop()


def _whole_number(config: pytest.Config, name: str) -> int:
    value = _option(config, name)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    _refuse(f"oomlab_{name} must be a whole number, not {value!r}")


def _refuse(sentence: str) -> NoReturn:
    """The fixture's one sentence, shown without the fixture's own source above it (each test that
    uses the session's worker repeats it)."""
    __tracebackhide__ = True
    pytest.fail(sentence, pytrace=False)


def _profiled_tasks(request: pytest.FixtureRequest) -> str | None:
    """--oomlab-profile's task names, or every task when a collected test's marker asks for profile=True."""
    names = _option(request.config, "profile")
    if not names and any(
        marker.kwargs.get("profile")
        for item in request.session.items
        for marker in item.iter_markers()
        if marker.name in MARKERS
    ):
        names = "all"
    return names or None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    marked = any(m.name in MARKERS for m in item.iter_markers())
    session = _current_session() if marked else None
    before = session.task_ids() if session else set()
    try:
        return (yield)
    finally:
        if session is not None:
            session.settle()
            if session.config.profile:
                from oomlab.observe.profiling import wait_for_profiles

                wait_for_profiles(session)
            item.stash[_PASSED_TASKS] = [t for t in session.tasks() if t.id not in before]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    session = _running_session()
    if call.when == "call" and session is not None and (lost := session.worker_lost()):
        # this test lost the worker: it fails with the true cause, and the next test gets a fresh one
        if report.outcome == "passed":
            report.outcome, report.longrepr = "failed", f"oomlab: the worker was lost during this test: {lost}"
        session.restart_worker()
        return report
    if call.when != "call" or report.outcome != "passed":
        return report
    for marker in item.iter_markers():
        check = MARKERS.get(marker.name)
        if check is None:
            continue
        session = _current_session()
        if session is None:
            report.outcome, report.longrepr = "failed", f"@pytest.mark.{marker.name} needs the oomlab_worker fixture"
            return report
        violation = check(
            *marker.args, **marker.kwargs, tasks=item.stash.get(_PASSED_TASKS, []), run_dir=session.run_dir
        )
        if violation is not None:
            report.outcome, report.longrepr = "failed", violation.long_repr
            return report
    return report


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist's controller, once per worker: a private directory where every worker leaves its run
    directories, so the controller gates all of them once (each worker is a session of its own)."""
    config = node.config
    if config.getoption("oomlab_baseline"):
        if _SHARED_DIR not in config.stash:
            config.stash[_SHARED_DIR] = tempfile.mkdtemp(
                prefix="oomlab-xdist-", dir=temp_dir()
            )  # 0700: only we write it
        node.workerinput[_SHARED_KEY] = config.stash[_SHARED_DIR]


def _workers_run_dirs(config: pytest.Config) -> list[str]:
    """The run directories xdist's workers left (none without xdist); the directory goes with them."""
    shared = config.stash.get(_SHARED_DIR, None)
    if shared is None:
        return []
    run_dirs: list[str] = []
    for name in sorted(os.listdir(shared)):
        with open(os.path.join(shared, name)) as handle:
            run_dirs.extend(str(path) for path in json.load(handle))
    shutil.rmtree(shared, ignore_errors=True)
    return run_dirs


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    config = session.config
    baseline = config.getoption("oomlab_baseline")
    run_dirs = config.stash.get(_RUN_DIRS, [])
    shared = getattr(config, "workerinput", {}).get(_SHARED_KEY)
    if shared:  # an xdist worker: the controller gates every worker's runs together
        from oomlab.trust import open_in_dir

        with open_in_dir(os.path.join(shared, f"{config.workerinput['workerid']}.json"), "w") as handle:  # type: ignore[attr-defined]
            json.dump(run_dirs, handle)
        return
    run_dirs = [*run_dirs, *_workers_run_dirs(config)]
    if not baseline or not run_dirs:
        return
    from oomlab.workflows.gate.flow import gate
    from oomlab.workflows.gate.runs import gated_runs

    try:
        runs = gated_runs(run_dirs)
        result = gate(
            baseline,
            runs.stats,
            runs.source,
            config.getoption("oomlab_fail"),
            os.path.join(str(config.rootpath), "pyproject.toml"),
            refusal=runs.refusal,  # a session with an OOM kill (or unfinished work) is no first baseline
            load=runs.load,  # load bounds: queue_wait.p95<2s, throughput>=40/s, oom_kills==0
            facts=runs.facts,
        )
    except OomlabError as error:
        raise pytest.UsageError(in_pytest_terms(error.message)) from None
    config.stash[_GATE] = result
    config.stash[_GATE_PAGE] = _write_gate_page(result, run_dirs[-1])
    if result.failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _write_gate_page(result: GateResult, run_dir: str) -> str:
    """RUN_DIR/gate.html, as `oomlab gate` writes it; a page that cannot be written is said, not raised
    (the verdict stands without its picture)."""
    from oomlab.report.html import write_gate

    try:
        return f"report: {write_gate(result, run_dir)}"
    except OSError as error:
        return f"report: not written ({error.strerror or error})"


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    result = config.stash.get(_GATE, None)
    if result is None:
        return
    from oomlab.report.gate import baseline_lines, headline, table_lines

    terminalreporter.section("oomlab gate", red=bool(result.failed), green=not result.failed)
    for index, line in enumerate(baseline_lines(result)):  # a first run: the figures saved as the baseline
        terminalreporter.line(line, bold=index == 0)
    lines = table_lines(result)
    for index, line in enumerate(lines):  # the header, its rule, then one row per check
        failed = index >= 2 and result.checks[index - 2].failed
        terminalreporter.line(line, red=failed, bold=index == 0)
    for notice in result.notices:
        terminalreporter.line(f"note: {notice}")
    terminalreporter.line(headline(result), red=bool(result.failed), bold=True)
    terminalreporter.line(config.stash.get(_GATE_PAGE, ""))
