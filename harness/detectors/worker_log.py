"""Celery's main process noticing a dead pool child, read from the worker's own log.

billiard's supervisor logs "Process 'ForkPoolWorker-1' pid:123 exited with 'signal 9 (SIGKILL)'"
when it reaps a child that did not exit cleanly: the moment Celery itself knows, whatever happens
to the task next (FAILURE, requeue or retry). The worker logs with LOG_FORMAT, whose first field
is the wall-clock time the line was made, to the microsecond."""
from __future__ import annotations

import re

LOG_FORMAT = "[%(created).6f %(levelname)s/%(processName)s] %(message)s"
_EXITED = re.compile(r"^\[(?P<wall>\d+\.\d+) \w+/MainProcess\] Process '[^']*' pid:(?P<pid>\d+) exited with '(?P<how>[^']*)'")


def child_deaths_noticed(log_path: str) -> dict[int, float]:
    """pid -> wall-clock time Celery's main process logged the child's abnormal exit."""
    noticed: dict[int, float] = {}
    try:
        with open(log_path, errors="replace") as handle:
            for line in handle:
                if match := _EXITED.match(line):
                    noticed.setdefault(int(match["pid"]), float(match["wall"]))
    except FileNotFoundError:
        pass
    return noticed
