"""`oomlab run SCENARIO`: a real worker under a real limit, the scenario replayed, the record written."""
from __future__ import annotations

import argparse
import sys

from rich.console import Console

from harness.config import RunConfig
from harness.errors import EXIT_OK, BadInput, Interrupted, OomlabError
from harness.report.terminal import Progress, render_summary
from harness.runner import Run
from harness.scenario import load_scenario
from harness.sizes import parse_size


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--param takes key=value, not {text!r}")
    return key, value


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="replay a scenario against a real worker under a memory limit")
    parser.add_argument("scenario", help="a built-in scenario name (see `oomlab scenarios`) or a path to a scenario .py file")
    parser.add_argument("--memory", help="memory limit for the worker's group, e.g. 256MiB (default: the scenario's)")
    parser.add_argument("--concurrency", type=int, help="pool size (default: the scenario's)")
    parser.add_argument("--pool", choices=("prefork", "solo", "threads"), help="Celery pool (default prefork)")
    parser.add_argument("--tasks", type=int, help="how many tasks to replay (default: the scenario's)")
    parser.add_argument("--variant", help="scenario variant, e.g. bad or fixed")
    parser.add_argument("--param", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                        help="a scenario parameter (repeatable)")
    parser.add_argument("--broker", help="use this broker URL instead of the embedded Redis")
    parser.add_argument("--backend", help="result backend URL (default: the broker)")
    parser.add_argument("--oom-scope", choices=("process", "group"), default="process",
                        help="process: the kernel kills one victim (Docker); group: the whole worker dies (Kubernetes)")
    parser.add_argument("--results", default="results", help="directory for run records (default ./results)")
    parser.add_argument("--timeout", type=float, help="seconds to wait for every task to be final (default: the plan's)")
    parser.add_argument("--start-timeout", type=float, default=60.0, help="seconds to wait for the worker to be ready")
    parser.add_argument("--sample-hz", type=float, default=100.0, help="RSS sampling rate (default 100)")
    parser.set_defaults(func=main)


def build_config(args: argparse.Namespace):
    scenario = load_scenario(args.scenario)
    defaults = scenario.defaults
    memory = args.memory or defaults.get("memory", "256MiB")
    concurrency = args.concurrency if args.concurrency is not None else defaults.get("concurrency", 2)
    if concurrency < 1:
        raise BadInput(f"--concurrency must be at least 1, not {concurrency}")
    if args.tasks is not None and args.tasks < 1:
        raise BadInput(f"--tasks must be at least 1, not {args.tasks}")
    variant = args.variant or scenario.variants[0]
    if variant not in scenario.variants:
        raise BadInput(f"scenario {scenario.name} has no variant {variant!r} (it has: {', '.join(scenario.variants)})")
    if args.sample_hz <= 0 or args.start_timeout <= 0 or (args.timeout is not None and args.timeout <= 0):
        raise BadInput("--sample-hz, --timeout and --start-timeout must be positive")
    config = RunConfig(
        scenario=scenario.name, memory=memory, memory_bytes=parse_size(memory), concurrency=concurrency,
        pool=args.pool or defaults.get("pool", "prefork"), tasks=args.tasks or defaults.get("tasks"),
        variant=variant, params=scenario.resolve_params(dict(args.param)), broker=args.broker,
        backend=args.backend, oom_scope=args.oom_scope, results_dir=args.results, timeout=args.timeout,
        start_timeout=args.start_timeout, sample_hz=args.sample_hz,
    )
    return scenario, config


def main(args: argparse.Namespace) -> int:
    scenario, config = build_config(args)
    out = Console(soft_wrap=True)
    err = Console(stderr=True)
    progress = Progress(err) if err.is_terminal else None
    run = Run(scenario, config, progress=progress)
    try:
        run.execute()
    except (OomlabError, Interrupted):
        if progress:
            progress.stop()
        if run.record.worker.get("pid"):  # a worker ran: its partial findings are worth showing
            render_summary(run.record, out)
        _print_run_dir(run)
        raise
    if progress:
        progress.stop()
    render_summary(run.record, out)
    _print_run_dir(run)
    return EXIT_OK


def _print_run_dir(run: Run) -> None:
    print(run.run_dir, flush=True)
    sys.stdout.flush()
