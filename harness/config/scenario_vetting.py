"""A user's scenario file is imported first in a short-lived child process, and only then in oomlab.

Import-time code is the one part of a scenario oomlab cannot bound from outside once it runs in
oomlab's own process: an endless loop hangs the run before any timeout applies, `os._exit()` ends
oomlab with the scenario's code, a non-daemon thread keeps oomlab from exiting, a process forked at
import outlives the run. The child (`python -m oomlab.config.scenario_child`) imports the file and
makes the same checks oomlab would, under a deadline, in its own process group and as a child
subreaper (whatever the import forks comes back to it), and says what it found in one line on a
pipe. Whatever is left in its group afterwards is killed. Built-in scenarios are oomlab's own code and
are not vetted."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess

from oomlab.errors import EXIT_BAD_INPUT, EXIT_PERMISSION, BadInput, NoPermission, OomlabError, ScenarioImportFailed
from oomlab.trust import import_env, python_argv

TIMEOUT_ENV = "OOMLAB_IMPORT_TIMEOUT"  # seconds a scenario file may take to import
DEFAULT_TIMEOUT = 60.0
MAX_TIMEOUT = 3600.0
MAX_VERDICT_BYTES = 64 * 1024  # one sentence; a pipe holds it without the child blocking


def import_timeout() -> float:
    text = os.environ.get(TIMEOUT_ENV, "")
    if not text:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds <= MAX_TIMEOUT:  # nan fails both
        raise BadInput(f"{TIMEOUT_ENV}={text!r} must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}")
    return seconds


def vet(path: str, name: str) -> None:
    """Import the scenario file at `path` in a child first; the child's verdict as oomlab's error."""
    timeout = import_timeout()
    read_end, write_end = os.pipe()
    try:
        process = subprocess.Popen(
            python_argv("-m", "oomlab.config.scenario_child", path, str(write_end)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # what the import prints, it prints again in oomlab
            stderr=subprocess.DEVNULL,
            env={**os.environ, **import_env()},
            pass_fds=(write_end,),
            start_new_session=True,  # its own group: killed whole, and a Ctrl-C is oomlab's to handle
        )
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    try:
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ScenarioImportFailed(
                f"scenario {name} did not finish importing within {timeout:g} s (a loop or a wait at import?); "
                f"oomlab stopped it (set {TIMEOUT_ENV} for a slower import)"
            ) from None
        verdict = _read_verdict(read_end)
    finally:
        _kill_group(process)
        os.close(read_end)
    if verdict is None:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        raise ScenarioImportFailed(
            f"scenario {name} {how} during import (os._exit() or a crash); a scenario must not end the process"
        )
    if "message" in verdict:
        kinds: dict[object, type[OomlabError]] = {EXIT_BAD_INPUT: BadInput, EXIT_PERMISSION: NoPermission}
        kind = kinds.get(verdict.get("code"), ScenarioImportFailed)
        raise kind(str(verdict["message"]))


def _read_verdict(fd: int) -> dict | None:
    """The child's one JSON line, read without waiting: a process the import forked may hold the pipe."""
    os.set_blocking(fd, False)
    try:
        data = os.read(fd, MAX_VERDICT_BYTES)
    except BlockingIOError:
        return None
    try:
        verdict = json.loads(data.decode(errors="replace").partition("\n")[0])
    except ValueError:
        return None
    return verdict if isinstance(verdict, dict) else None


def _kill_group(process: subprocess.Popen) -> None:
    """Every process left in the child's group (the child too, on a timeout or an interrupt)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise
    process.wait()
