"""`python -m bench [all|fidelity|detection|overhead|sampler|plan|plugin|load|saturation|stream|tasks|agent] [--kills N]
[--tasks N] [--rounds N]`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from oomlab.cli.wiring import wire

from bench import report

BENCHMARKS = {
    "fidelity": "bench.fidelity",
    "detection": "bench.detection",
    "overhead": "bench.overhead",
    "sampler": "bench.sampler_cost",
    "plan": "bench.plan_cost",
    "load": "bench.load_cost",
    "saturation": "bench.saturation",
    "stream": "bench.stream",
    "tasks": "bench.tasks_read",
    "plugin": "bench.plugin_load",
    "agent": "bench.agent_cost",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("which", nargs="*", default=["all"], choices=["all", *BENCHMARKS])
    parser.add_argument(
        "--kills",
        type=int,
        metavar="N",
        help="detection: OOM kills of each kind (default 30); agent: kills timed on the host and in the container (default 20)",
    )
    parser.add_argument(
        "--tasks",
        type=int,
        metavar="N",
        help="overhead: no-op tasks per round (default 2000); stream: the largest plan (default 20,000)",
    )
    parser.add_argument("--rounds", type=int, metavar="N", help="overhead: alternating rounds (default 4)")
    args = parser.parse_args(argv)
    names = list(BENCHMARKS) if "all" in args.which else args.which
    wire()  # the runs a benchmark's workflows start leave their pictures, as from the command line
    runs_dir = os.path.join(report.RESULTS, "runs")
    for name in names:
        report.console().rule(name)
        module = importlib.import_module(BENCHMARKS[name])
        if args.kills and hasattr(module, "KILLS"):
            module.KILLS = args.kills  # type: ignore[attr-defined]
        if args.tasks and name == "stream":
            module.TASKS = args.tasks  # type: ignore[attr-defined]
        if args.tasks and name == "overhead":
            module.TASKS = args.tasks  # type: ignore[attr-defined]
        if args.rounds and name == "overhead":
            module.ROUNDS = args.rounds  # type: ignore[attr-defined]
        data = module.main(runs_dir)
        print(report.save(name, data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
