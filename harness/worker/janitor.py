"""A run's queue on a password-protected broker, deleted even when the run is SIGKILLed, with the
password never written down (a lease holds the URL masked, see oomlab.worker.leftovers).

The run starts a small process and hands it the URL through a pipe; the janitor then waits for the
pipe to close. A run that ends normally deletes its queue itself and writes DONE before closing the
pipe; a pipe that closes without it means the run died, and the janitor deletes the queue and takes
it off the run's lease. It lives in its own session (a Ctrl-C to the terminal or a kill of the run's
group leaves it its job), and exits as soon as the pipe closes either way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass

from oomlab.trust import import_env

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
            process = subprocess.Popen(
                [sys.executable, "-m", "oomlab.worker.janitor"],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, **import_env()},
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


def main() -> None:
    job = sys.stdin.buffer.readline()
    if not job or sys.stdin.buffer.read() == DONE:
        return
    signal.alarm(DEADLINE_SECONDS)  # a broker that keeps refusing (kombu retries for ever) must not keep it
    from oomlab.worker.leftovers import delete_queue, read_lease

    broker_url, queue, lease_file = json.loads(job)
    try:
        delete_queue(broker_url, queue)
    except Exception:  # the broker is down too: the lease keeps the queue for a sweep that has the password
        return
    lease = read_lease(lease_file)
    if lease is not None:
        lease.queues = [entry for entry in lease.queues if entry[1] != queue]
        lease.save()


if __name__ == "__main__":
    main()
