"""The broker and result backend URLs, from the command line, an environment variable or a file.

A command line is readable by every user on the machine (/proc/PID/cmdline, `ps`) for as long as the
process runs, so a URL with a password belongs in the environment (`--broker-from-env VAR`) or a
file only its owner can read (`--broker-file PATH`). Either way the URL is put back where `--broker`
would have put it, and oomlab hands it to the processes it starts by environment or pipe, never argv."""

from __future__ import annotations

import argparse
import os
import stat

from oomlab.config.argv_secret import refuse_argv_secret
from oomlab.errors import BadInput, NoPermission
from oomlab.record.reading import NotRegular, open_regular, read_capped
from oomlab.trust import RefusedLink, check_trusted_dir, untrusted_file_reason

MAX_URL_FILE_BYTES = 64 * 1024  # a URL, with room for a comment line or two
_ROLES = (("broker", "the broker URL"), ("result_backend", "the result backend URL"))


def add_url_flags(
    parser: argparse.ArgumentParser, dest: str, help_text: str, metavar: str = "URL", required: bool = False
) -> None:
    """`--X URL`, `--X-from-env VAR` and `--X-file PATH`, of which one may be given."""
    flag = "--" + dest.replace("_", "-")
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument(
        flag,
        dest=dest,
        metavar=metavar,
        help=f"{help_text}; every user can read a command line, so a URL with a password goes by {flag}-from-env or {flag}-file",
    )
    group.add_argument(
        f"{flag}-from-env", dest=f"{dest}_from_env", metavar="VAR", help=f"{flag}, read from environment variable VAR"
    )
    group.add_argument(
        f"{flag}-file",
        dest=f"{dest}_file",
        metavar="PATH",
        help=f"{flag}, read from the first line of this file (yours or root's, mode 0600 or 0400)",
    )


def read_url_flags(args: argparse.Namespace) -> None:
    """Put a URL given by environment or file where its plain flag's value goes (args.broker, ...)."""
    for dest, what in _ROLES:
        flag = "--" + dest.replace("_", "-")
        if variable := getattr(args, f"{dest}_from_env", None):
            setattr(args, dest, _from_env(f"{flag}-from-env", variable, what))
        elif path := getattr(args, f"{dest}_file", None):
            setattr(args, dest, _from_file(f"{flag}-file", path, what))


def read_secret_url(args: argparse.Namespace, dest: str, what: str) -> str | None:
    """The URL of `--X`, `--X-from-env VAR` or `--X-file PATH` (add_url_flags), for a flag whose URL
    may carry a secret (a webhook's token, a store's password): one on the command line is refused
    (BadInput, exit 2, naming the safe flags), and VAR is removed from the environment, so a worker
    the agent starts (which inherits the rest) never holds it."""
    flag = "--" + dest.replace("_", "-")
    if variable := getattr(args, f"{dest}_from_env", None):
        url = _from_env(f"{flag}-from-env", variable, what)
        os.environ.pop(variable, None)
        return url
    if path := getattr(args, f"{dest}_file", None):
        return _from_file(f"{flag}-file", path, what)
    given: str | None = getattr(args, dest, None)
    if given:
        refuse_argv_secret(flag, given, f"{flag}-from-env VAR or {flag}-file PATH")
    return given


def _from_env(flag: str, variable: str, what: str) -> str:
    value = os.environ.get(variable, "").strip()
    if not value:
        raise BadInput(f"{flag} {variable}: the environment has no {variable} (or it is empty) to read {what} from")
    return value


def _from_file(flag: str, path: str, what: str) -> str:
    """The first non-blank line of a regular file that only a trusted user can change or read, in a
    directory only a trusted user can write (someone who could swap it would choose the broker)."""
    real = os.path.realpath(path)
    check_trusted_dir(os.path.dirname(real), f"directory of {flag}")
    try:
        fd = open_regular(real)
    except FileNotFoundError:
        raise BadInput(f"{flag} {path} does not exist") from None
    except (NotRegular, RefusedLink) as exc:
        raise BadInput(f"cannot read {flag} {path}: {exc.strerror}; oomlab reads only regular files") from None
    except OSError as exc:
        raise NoPermission(f"cannot read {flag} {path}: {exc.strerror}") from None
    try:
        fd_stat = os.fstat(fd)  # the file read, not one swapped in after a check
        data = read_capped(fd, MAX_URL_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if reason := untrusted_file_reason(fd_stat):
        raise NoPermission(f"refusing {flag} {path}: {reason}")
    if fd_stat.st_mode & stat.S_IROTH:
        raise NoPermission(
            f"refusing {flag} {path}: every user can read it (mode {stat.S_IMODE(fd_stat.st_mode):o}); chmod 600 it"
        )
    if len(data) > MAX_URL_FILE_BYTES:
        raise BadInput(f"{flag} {path} is larger than {MAX_URL_FILE_BYTES // 1024} KiB; it should hold one URL")
    lines = [line.strip() for line in data.decode(errors="replace").splitlines() if line.strip()]
    if not lines:
        raise BadInput(f"{flag} {path} is empty; it should hold {what} on its first line")
    return lines[0]
