"""`python -m tests.fleet.demo [--tasks N] [--concurrency C] [--memory SIZE]` (root): the fleet run that
docs/fleets.md shows, on this machine. Three "hosts" are network namespaces with a veth pair each to a
fourth, where a private redis-server and the controller run (tests/fleet/netns.py); each replica is
`oomlab agent --memory SIZE --events-from-env FLEET_EVENTS -- celery -A oomlab.scenarios.alloc worker`.
Prints the controller's command and output, then removes every namespace and process."""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path

from tests.fleet.netns import REDIS_PORT, hosts, run_controller, start_agent, stop_all


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fleet.demo")
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--every", type=int, default=30, help="one over-limit task in this many (alloc's `every`)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--memory", default="256MiB")
    parser.add_argument("--results", default="results", help="where the run's fleet.json goes (default ./results)")
    args = parser.parse_args()
    stream, queue = f"fleet-{uuid.uuid4().hex[:8]}", f"fleet.{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp, hosts(3) as made:
        where = Path(tmp)
        made.start_redis(where)
        agents = [
            start_agent(made, i, stream, queue, where, concurrency=args.concurrency, memory=args.memory)
            for i in (1, 2, 3)
        ]
        extra = ["--tasks", str(args.tasks), "--param", f"every={args.every}"]
        print(
            f"$ oomlab run alloc --fleet redis://127.0.0.1:{REDIS_PORT}/1/{stream} --replicas 3 --queue {queue} "
            f"--broker redis://127.0.0.1:{REDIS_PORT}/0 {' '.join(extra)}"
        )
        done = run_controller(made, stream, queue, where, *extra, results=Path(args.results).resolve())
        stop_all(made, agents)
        sys.stdout.write(done.stderr + done.stdout)
        print(f"(exit code {done.returncode})")
        return done.returncode


if __name__ == "__main__":
    sys.exit(main())
