"""The vetting child (see oomlab.config.scenario_vetting): imports one scenario file as oomlab would,
then says on the pipe it was given whether oomlab may: the error, a thread the import left running
(oomlab would wait for it at exit), or a process it left running (killed here); `{}` when none."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
import time

from oomlab.config.scenario import failure, load_unvetted, scenario_name
from oomlab.errors import OomlabError

PR_SET_CHILD_SUBREAPER = 36


def main() -> None:
    path, fd = sys.argv[1], int(sys.argv[2])
    os.set_inheritable(fd, False)
    # what the import forks and orphans comes back to this process, not to init: found, and killed
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    name = scenario_name(path)
    verdict: dict = {}
    try:
        load_unvetted(path)
    except OomlabError as error:
        verdict = {"code": error.exit_code, "message": error.message}
    except BaseException as exc:  # KeyboardInterrupt, GeneratorExit: raised by the scenario, here
        said = failure(name, "to import", exc)
        verdict = {"code": said.exit_code, "message": said.message}
    left = _left_running(name)  # killed whatever the import's verdict: nothing outlives the vetting
    if left and not verdict:
        verdict = {"code": 6, "message": left}
    os.write(fd, json.dumps(verdict).encode() + b"\n")
    os._exit(0)  # never waiting for the scenario's threads


def _left_running(name: str) -> str | None:
    threads = [
        thread for thread in threading.enumerate() if not thread.daemon and thread is not threading.main_thread()
    ]
    first = None
    quiet = 0  # a daemon's parent may exit while /proc is read (both missed once): three empty looks in a row
    for _ in range(200):  # killing one may hand its own children to this process: until none is left
        children = _children()
        if not children:
            quiet += 1
            if quiet >= 3:
                break
            time.sleep(0.02)
            continue
        quiet = 0
        first = first or (children[0], _command(children[0]))
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)
    if threads:
        return (
            f"scenario {name} left a thread running at import ({threads[0].name!r}, not a daemon): oomlab would "
            f"wait for it for ever at exit; make it a daemon thread or start it in a task"
        )
    if first:
        return (
            f"scenario {name} left a process running at import (pid {first[0]}: {first[1]}); "
            f"oomlab stopped it: start processes in a task, not at import"
        )
    return None


def _children() -> list[int]:
    """This process's live children (zombies reaped first): with the subreaper, every descendant the
    import left whose parent has exited is one of them."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and int(fields[1]) == me and fields[0] != b"Z":
            found.append(int(entry))
    return sorted(found)


def _command(pid: int) -> str:
    text = _cmdline(pid)
    return "a fork of the import" if not text or text == _cmdline(os.getpid()) else text


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read(200).replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


if __name__ == "__main__":
    main()
