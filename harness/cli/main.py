"""`oomlab`: parse, dispatch to a command module, and turn every failure into one sentence and an
exit code (never a traceback; an unexpected one goes to a log file that the sentence names)."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import sys
import tempfile
import traceback
from typing import Any, NoReturn, TextIO

from oomlab.cli.url_flags import read_url_flags
from oomlab.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_RESULTS, Interrupted, OomlabError
from oomlab.record.printable import printable
from oomlab.record.redact import safe_url
from oomlab.trust import apply_results_umask
from oomlab.version import __version__

DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)  # a results directory that cannot take more: exit 10


# every sub-command, in the order `oomlab --help` lists them, and its module in oomlab.cli.commands
# (tests/cli/test_command_names.py holds this and the modules' own registrations together)
COMMAND_MODULES = {
    "run": "run",
    "worker": "worker",
    "agent": "agent",
    "replay": "agent",
    "scenarios": "scenarios",
    "recommend": "recommend",
    "lab": "lab",
    "gate": "gate",
    "baseline": "baseline",
    "report": "report",
    "export": "export",
}


def commands(only: str | None = None) -> tuple:
    # imported when called, not with this module: a Ctrl-C while Celery and rich load is then an
    # ordinary interrupt (exit 130, one line), not a traceback. A named command loads its own module
    # only: `oomlab run` then holds none of recommend's, the gate's or the lab's code (plan mode's
    # memory), and `oomlab agent`, beside a production worker for months, none of the lab
    if only in COMMAND_MODULES:
        return (importlib.import_module(f"oomlab.cli.commands.{COMMAND_MODULES[only]}"),)
    from oomlab.cli.commands import agent, baseline, export, gate, lab, recommend, report, run, scenarios, worker

    return (run, worker, agent, scenarios, recommend, lab, gate, baseline, report, export)


class OneSentenceParser(argparse.ArgumentParser):
    """argparse's usage errors as one line and exit 2, like every other bad input (its default prints
    the whole usage block first); its sub-command parsers are made of this class too."""

    def error(self, message: str) -> NoReturn:
        if option := _VALUE_MISSING.match(message):  # the option the user gave, not another command's
            message += f" (a value that starts with '-' takes the = form: {option.group(1)}=VALUE)"
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        """Unknown options are the sub-command's to refuse, so its sentence names its own --help."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self._owner(parsed).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def _owner(self, parsed: argparse.Namespace) -> argparse.ArgumentParser:
        """The innermost (sub-)command parser the parsed words chose."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and getattr(parsed, action.dest, None) in action.choices:
                owner = action.choices[getattr(parsed, action.dest)]
                return owner._owner(parsed) if isinstance(owner, OneSentenceParser) else owner
        return self


_VALUE_MISSING = re.compile(r"^argument (?:\S+/)?(--?[^\s/:]+): expected one argument$")


def parser(only: str | None = None) -> argparse.ArgumentParser:
    top = OneSentenceParser(prog="oomlab", description="Real Celery workers under real memory limits.")
    top.add_argument("--version", action="version", version=f"oomlab {__version__}")
    sub = top.add_subparsers(dest="command", required=True)
    for command in commands(only):
        command.register(sub)
    return top


class ClosedPipeProof:
    """stdout that survives its reader going away (`oomlab gate | head -1`): the first write that
    meets a closed pipe points the descriptor at /dev/null, and the command runs on to its own exit
    code, with no internal error and no crash log. Everything else is the wrapped stream's."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_null()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_null()

    def _to_null(self) -> None:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, self._stream.fileno())  # what is still buffered goes there, at exit too
        finally:
            os.close(null)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    code = _main(argv)
    if argv is None:  # the program itself, not a caller's function call
        _exit_without_waiting(code)
    return code


def _exit_without_waiting(code: int) -> None:
    """Python's exit waits for every non-daemon thread, and a scenario's plan() or teardown() may have
    left one running: once oomlab's own cleanup is done, exit with the code as it is."""
    import threading

    if any(not thread.daemon for thread in threading.enumerate() if thread is not threading.main_thread()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _main(argv: list[str] | None) -> int:
    if not isinstance(sys.stdout, ClosedPipeProof) and sys.stdout is not None:
        sys.stdout = ClosedPipeProof(sys.stdout)
    words = sys.argv[1:] if argv is None else argv
    only = words[0] if words[:1] and words[0] in COMMAND_MODULES else None
    try:
        args = parser(only).parse_args(argv)  # usage errors: argparse's message and exit code 2
        read_url_flags(args)  # --broker-from-env, --broker-file: kept out of every process's command line
        apply_results_umask()  # what runs create is private unless OOMLAB_UMASK says otherwise
        if only != "agent":
            from oomlab.cli.wiring import wire

            wire()  # every run a command starts, its workflows' too, leaves its pictures
        return args.func(args)
    except OomlabError as error:
        print(f"oomlab: {printable(safe_url(error.message))}", file=sys.stderr)
        return error.exit_code
    except (Interrupted, KeyboardInterrupt) as stop:
        print(
            "oomlab: interrupted; a run that had started keeps its partial record in its run directory", file=sys.stderr
        )
        return 128 + stop.signum if isinstance(stop, Interrupted) else EXIT_INTERRUPTED
    except OSError as error:
        if error.errno not in DISK_FULL:
            return _internal_error()
        print(f"oomlab: cannot write {error.filename or 'a file'}: {error.strerror}; free space there", file=sys.stderr)
        return EXIT_RESULTS
    except Exception:
        return _internal_error()


def _internal_error() -> int:
    """An error oomlab did not foresee: one sentence, and the traceback in a log file it names."""
    fd, path = tempfile.mkstemp(prefix="oomlab-crash-", suffix=".log")
    with os.fdopen(fd, "w") as handle:
        handle.write(safe_url(traceback.format_exc()))
    print(
        printable(safe_url(f"oomlab: internal error ({sys.exc_info()[1]!r}); the traceback is in {path}")),
        file=sys.stderr,
    )
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
