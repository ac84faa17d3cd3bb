"""`oomlab`: parse, dispatch to a command module, and turn every failure into one sentence and an
exit code (never a traceback; an unexpected one goes to a log file that the sentence names)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback

from harness import __version__
from harness.commands import baseline, gate, lab, recommend, report, run, scenarios, worker
from harness.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, Interrupted, OomlabError
from harness.redact import safe_url
from harness.trust import apply_results_umask

COMMANDS = (run, worker, scenarios, recommend, lab, gate, baseline, report)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="oomlab", description="Real Celery workers under real memory limits.")
    top.add_argument("--version", action="version", version=f"oomlab {__version__}")
    sub = top.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)  # usage errors: argparse's message and exit code 2
    try:
        apply_results_umask()  # what runs create is private unless OOMLAB_UMASK says otherwise
        return args.func(args)
    except OomlabError as error:
        print(f"oomlab: {safe_url(error.message)}", file=sys.stderr)
        return error.exit_code
    except (Interrupted, KeyboardInterrupt) as stop:
        print("oomlab: interrupted; the partial record is in the run directory above", file=sys.stderr)
        return 128 + stop.signum if isinstance(stop, Interrupted) else EXIT_INTERRUPTED
    except Exception:
        fd, path = tempfile.mkstemp(prefix="oomlab-crash-", suffix=".log")
        with os.fdopen(fd, "w") as handle:
            handle.write(safe_url(traceback.format_exc()))
        print(safe_url(f"oomlab: internal error ({sys.exc_info()[1]!r}); the traceback is in {path}"), file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
