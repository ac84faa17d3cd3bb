"""`python -m tests.fleet.demo [--tasks N] [--concurrency C] [--memory SIZE]` (root): the fleet run that
docs/fleets.md shows, on this machine. Three "hosts" are network namespaces with a veth pair each to a
fourth, where a private redis-server and the controller run (tests/fleet/netns.py); each replica is
`oomlab agent --memory SIZE --events-from-env FLEET_EVENTS -- celery -A oomlab.scenarios.alloc worker`.
First one worker of the same limit and pool runs the same tasks on this host (`oomlab run alloc`), and the
fleet run sets its figures beside the fleet's (`--beside`). Prints both commands and the fleet run's
output, then removes every namespace and process."""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path

from tests.fleet.netns import REDIS_PORT, hosts, run_controller, run_single, start_agent, stop_all


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fleet.demo")
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--every", type=int, default=30, help="one over-limit task in this many (alloc's `every`)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--memory", default="256MiB")
    parser.add_argument("--results", default="results", help="where the run's fleet.json goes (default ./results)")
    args = parser.parse_args()
    stream, queue = f"fleet-{uuid.uuid4().hex[:8]}", f"fleet.{uuid.uuid4().hex[:8]}"
    results = Path(args.results).resolve()
    plan = ["--tasks", str(args.tasks), "--param", f"every={args.every}"]
    with tempfile.TemporaryDirectory() as tmp, hosts(3) as made:
        where = Path(tmp)
        worker = ["--memory", args.memory, "--concurrency", str(args.concurrency), *plan]
        print(f"$ oomlab run alloc {' '.join(worker)}")
        single = run_single(where, *worker, results=results)
        print(single)
        made.start_redis(where)
        agents = [
            start_agent(made, i, stream, queue, where, concurrency=args.concurrency, memory=args.memory)
            for i in (1, 2, 3)
        ]
        extra = [*plan, "--beside", single]
        print(
            f"$ oomlab run alloc --fleet redis://127.0.0.1:{REDIS_PORT}/1/{stream} --replicas 3 --queue {queue} "
            f"--broker redis://127.0.0.1:{REDIS_PORT}/0 {' '.join(extra)}"
        )
        done = run_controller(made, stream, queue, where, *extra, results=results)
        stop_all(made, agents)
        sys.stdout.write(done.stderr + done.stdout)
        print(f"(exit code {done.returncode})")
        return done.returncode


if __name__ == "__main__":
    sys.exit(main())
