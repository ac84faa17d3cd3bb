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
from oomlab.record.reading import NotRegular, open_regular, read_capped
from oomlab.trust import RefusedLink

CHUNK_BYTES = 4 << 20
MAX_LINE_CHARS = 64 << 10  # Celery's lines are short: a longer one is no line this reads

_EXITED = re.compile(
    r"^\[(?P<wall>\d+\.\d+) \w+/MainProcess\] Process '[^']*' pid:(?P<pid>\d+) exited with '(?P<how>[^']*)'"
)
_UNREGISTERED = re.compile(r"Received unregistered task of type '([^']+)'")
_HEADERS_ID = re.compile(r"'id': '([^']+)'")  # the dropped message's headers, a few lines below
_RECORD = re.compile(r"^\[\d+\.\d+ \w+/")  # a new log record: the message's lines have ended


class WorkerLog:
    def __init__(self, path: str):
        self.path = path
        self.child_deaths: dict[int, float] = {}  # pid -> wall-clock time Celery's main logged its abnormal exit
        self.unregistered: set[str] = set()  # task names the worker received but does not know
        self.unregistered_ids: set[str] = set()  # their task ids (from the headers Celery logs)
        self._in_unregistered = False
        self._offset = 0
        self._partial = ""
        self._cache = ReadCache()

    def read(self) -> WorkerLog:
        """What the log gained since the last read, a chunk at a time: a FIFO or device planted in a
        share is never read (nor blocks), and a huge log costs a chunk of memory, not its size."""
        try:
            fd = open_regular(self.path, follow=False)  # in a share: never a link
        except (FileNotFoundError, RefusedLink, NotRegular):
            return self
        try:
            while chunk := read_capped(fd, CHUNK_BYTES, self._offset):
                self._offset += len(chunk)
                self._take(chunk.decode(errors="replace"))
            # the log's cache is charged to the worker's group, which it would fill in a long run
            self._cache.release(fd, self._offset)
        finally:
            os.close(fd)
        return self

    def _take(self, data: str) -> None:
        lines = (self._partial + data).split("\n")
        self._partial = lines.pop()[:MAX_LINE_CHARS]  # an endless line: its start is all that matters
        for line in lines:
            if match := _EXITED.match(line):
                self.child_deaths.setdefault(int(match["pid"]), float(match["wall"]))
            elif match := _UNREGISTERED.search(line):
                self.unregistered.add(match.group(1))
                self._in_unregistered = True
            elif self._in_unregistered:
                if _RECORD.match(line):
                    self._in_unregistered = False
                elif found := _HEADERS_ID.search(line):
                    self.unregistered_ids.add(found.group(1))
                    self._in_unregistered = False
