"""The run's side of its queue's janitor (the process is `python -m oomlab.worker.janitor`): started
with the URL through a pipe, dismissed with DONE when the run deleted the queue itself."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass

from oomlab.trust import start_python

DONE = b"done\n"
DEADLINE_SECONDS = 30


@dataclass
class QueueJanitor:
    process: subprocess.Popen
    pipe: int  # the write end; closing it (by exit or SIGKILL) is what the janitor waits for

    @classmethod
    def start(cls, broker_url: str, queue: str, lease_file: str) -> QueueJanitor:
        read_end, write_end = os.pipe()  # not inherited by the workers the run starts later (PEP 446)
        try:
            process = start_python(
                "-m",
                "oomlab.worker.janitor",
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        os.write(write_end, json.dumps([broker_url, queue, lease_file]).encode() + b"\n")
        return cls(process, write_end)

    def dismiss(self) -> None:
        """The run deleted its queue itself: the janitor exits without touching the broker."""
        try:
            os.write(self.pipe, DONE)
        except OSError:  # it died already: nothing left to tell it
            pass
        finally:
            os.close(self.pipe)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
