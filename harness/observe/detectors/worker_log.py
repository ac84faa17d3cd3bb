"""What Celery itself says in the worker's log, read as it grows (from where the last read stopped).

billiard's supervisor logs "Process 'ForkPoolWorker-1' pid:123 exited with 'signal 9 (SIGKILL)'"
when it reaps a child that did not exit cleanly: the moment Celery itself knows, whatever happens
to the task next (FAILURE, requeue or retry). The worker logs with LOG_FORMAT, whose first field
is the wall-clock time the line was made, to the microsecond (oomlab.worker.log_format). Celery also logs the tasks it received
but does not know (and drops)."""

from __future__ import annotations

import os
import re

from oomlab.observe.page_cache import ReadCache
from oomlab.trust import RefusedLink, open_nofollow

_EXITED = re.compile(
    r"^\[(?P<wall>\d+\.\d+) \w+/MainProcess\] Process '[^']*' pid:(?P<pid>\d+) exited with '(?P<how>[^']*)'"
)
_UNREGISTERED = re.compile(r"Received unregistered task of type '([^']+)'")


class WorkerLog:
    def __init__(self, path: str):
        self.path = path
        self.child_deaths: dict[int, float] = {}  # pid -> wall-clock time Celery's main logged its abnormal exit
        self.unregistered: set[str] = set()  # task names the worker received but does not know
        self._offset = 0
        self._partial = ""
        self._cache = ReadCache()

    def read(self) -> WorkerLog:
        try:
            with open_nofollow(self.path, errors="replace") as handle:  # in a share: never a link
                handle.seek(self._offset)
                data = handle.read()
                self._offset = handle.tell()
                # the log's cache is charged to the worker's group, which it would fill in a long run
                self._cache.release(handle.fileno(), os.lseek(handle.fileno(), 0, os.SEEK_CUR))
        except (FileNotFoundError, RefusedLink):
            return self
        lines = (self._partial + data).split("\n")
        self._partial = lines.pop()
        for line in lines:
            if match := _EXITED.match(line):
                self.child_deaths.setdefault(int(match["pid"]), float(match["wall"]))
            elif match := _UNREGISTERED.search(line):
                self.unregistered.add(match.group(1))
        return self
