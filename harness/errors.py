"""Errors a user can act on, each mapped to its own exit code (documented in the README)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_PERMISSION = 3
EXIT_WORKER_START = 4
EXIT_BROKER = 5
EXIT_SCENARIO_IMPORT = 6
EXIT_REGRESSION = 7  # oomlab gate: task memory grew past a threshold (not an error)
# 8: --placement docker could not get an engine or image (harness/worker/docker/engine.py)
EXIT_TIMED_OUT = 9  # the run's --timeout passed with tasks unfinished (status timed_out)
EXIT_RESULTS = 10  # the results directory cannot be written: read-only, no permission, full disk
EXIT_WORKER_LOST = 11  # the worker's main process exited mid-run, tasks left unrun (status worker_lost)
EXIT_PLAN_REFUTED = (
    12  # oomlab recommend (--memory, --concurrency, --rate): its own trial at the setting was OOM-killed
)
EXIT_NO_SAFE_SETTING = 13  # oomlab recommend: one task needs more than the limit leaves (a verdict, not an error)
EXIT_INTERRUPTED = 130


# a run that ended but did not do its work: its status, and the exit code `oomlab run` returns
STATUS_EXIT_CODES = {"worker_lost": EXIT_WORKER_LOST, "timed_out": EXIT_TIMED_OUT}


class OomlabError(Exception):
    """One clear sentence for the user; `exit_code` tells scripts what kind of failure it was."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadInput(OomlabError):
    exit_code = EXIT_BAD_INPUT


class NoPermission(OomlabError):
    exit_code = EXIT_PERMISSION


class WorkerStartFailed(OomlabError):
    exit_code = EXIT_WORKER_START


class BrokerUnreachable(OomlabError):
    exit_code = EXIT_BROKER


class ResultsUnwritable(OomlabError):
    exit_code = EXIT_RESULTS


class PlanRefuted(OomlabError):
    """recommend's plan failed its own trial: nothing is handed over."""

    exit_code = EXIT_PLAN_REFUTED


class ScenarioFailed(OomlabError):
    """The scenario's own code raised: at import, in plan() or in teardown()."""

    exit_code = EXIT_SCENARIO_IMPORT


class ScenarioImportFailed(ScenarioFailed):
    pass


class ExtraMissing(ScenarioImportFailed):
    """A built-in scenario's library is not installed: the sentence names the extra that brings it."""

    def __init__(self, scenario: str, module: str, extra: str):
        self.module = module
        self.install = f"pip install 'oomlab[{extra}]'"
        super().__init__(f"scenario {scenario} needs {module}, which oomlab's {extra!r} extra installs: {self.install}")


class UnknownTaskNames(ScenarioFailed):
    """The run would send task names the worker's app does not register (checked before sending)."""


class Interrupted(BaseException):
    """Raised in the main thread by SIGINT/SIGTERM/SIGHUP so `finally` blocks clean up."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
