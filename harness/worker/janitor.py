"""A run's queue on a password-protected broker, deleted even when the run is SIGKILLed, with the
password never written down (a lease holds the URL masked, see oomlab.worker.leftovers).

The run starts a small process and hands it the URL through a pipe; the janitor then waits for the
pipe to close. A run that ends normally deletes its queue itself and writes DONE before closing the
pipe; a pipe that closes without it means the run died, and the janitor deletes the queue and takes
it off the run's lease. It lives in its own session (a Ctrl-C to the terminal or a kill of the run's
group leaves it its job), and exits as soon as the pipe closes either way. This module is that
process; the run's side of it is oomlab.worker.queue_janitor."""

from __future__ import annotations

import json
import signal
import sys

from oomlab.worker.queue_janitor import DEADLINE_SECONDS, DONE


def main() -> None:
    job = sys.stdin.buffer.readline()
    if not job or sys.stdin.buffer.read() == DONE:
        return
    signal.alarm(DEADLINE_SECONDS)  # a broker that keeps refusing (kombu retries for ever) must not keep it
    from oomlab.worker.leftovers import delete_queue, read_lease  # only now: the waiting process stays small

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
