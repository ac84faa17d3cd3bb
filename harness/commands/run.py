"""`oomlab run SCENARIO`: a real worker under a real limit, the scenario replayed, the record written."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from harness.compare import run_compare
from harness.config import RunConfig
from harness.docker.engine import check_docker_config
from harness.errors import EXIT_OK, STATUS_EXIT_CODES, BadInput, Interrupted, OomlabError
from harness.limits.attached import attached_limit
from harness.report.terminal import Progress, render_summary
from harness.runner import Run
from harness.scenario import load_scenario
from harness.sizes import format_size, parse_size
from harness.worker_share import WorkerShare


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"takes key=value, not {text!r}")
    return key, value


def _celery_value(text: str):
    """A Celery setting's value from the command line: JSON when it parses (numbers, booleans,
    lists), the plain string otherwise."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def add_worker_settings(parser: argparse.ArgumentParser) -> None:
    """What the worker runs: shared by `oomlab run` and `oomlab worker`."""
    parser.add_argument("--concurrency", type=int, help="pool size (default: the scenario's)")
    parser.add_argument(
        "--pool", choices=("prefork", "solo", "threads", "gevent", "eventlet"), help="Celery pool (default prefork)"
    )
    parser.add_argument("--variant", help="scenario variant, e.g. bad or fixed (default: the scenario's first)")
    parser.add_argument(
        "--param",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="a scenario parameter (repeatable)",
    )
    parser.add_argument(
        "--celery",
        action="append",
        type=key_value,
        default=[],
        metavar="SETTING=VALUE",
        help="a Celery setting for the worker, e.g. worker_prefetch_multiplier=1 (repeatable)",
    )
    parser.add_argument(
        "--max-memory-per-child",
        metavar="SIZE",
        help="set worker_max_memory_per_child (Celery counts KiB; give a size such as 200MiB)",
    )


def pool_settings(args: argparse.Namespace, defaults: dict) -> tuple[int, str]:
    """The pool size and the pool: the command line over the scenario's defaults."""
    concurrency = args.concurrency if args.concurrency is not None else defaults.get("concurrency", 2)
    if concurrency < 1:
        raise BadInput(f"--concurrency must be at least 1, not {concurrency}")
    return concurrency, args.pool or defaults.get("pool", "prefork")


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="replay a scenario against a real worker under a memory limit")
    parser.add_argument(
        "scenario", help="a built-in scenario name (see `oomlab scenarios`) or a path to a scenario .py file"
    )
    parser.add_argument("--memory", help="memory limit for the worker's group, e.g. 256MiB (default: the scenario's)")
    add_worker_settings(parser)
    parser.add_argument("--tasks", type=int, help="how many tasks to replay (default: the scenario's)")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="run every variant of the scenario under the same limit and print them side by side",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        default=None,
        help="trace Python allocations in each task too, to set beside its RSS peak (slower)",
    )
    parser.add_argument("--broker", help="use this broker URL instead of the embedded Redis")
    parser.add_argument(
        "--result-backend",
        dest="result_backend",
        metavar="URL",
        help="result backend URL (default: the broker if it is Redis, else the embedded Redis)",
    )
    parser.add_argument(
        "--backend",
        choices=("cgroup", "docker"),
        default="cgroup",
        help="where the worker runs: a memory cgroup of oomlab's own, or a Docker container with the limit",
    )
    parser.add_argument(
        "--docker-restart",
        choices=("no", "on-failure", "always"),
        default="no",
        help="the container's restart policy (--backend docker): a start-up OOM becomes a crash loop",
    )
    parser.add_argument(
        "--oom-scope",
        choices=("process", "group"),
        default="process",
        help="process: the kernel kills one victim (Docker); group: the whole worker dies (Kubernetes)",
    )
    parser.add_argument(
        "--attach",
        metavar="DIR",
        help="replay against a worker oomlab did not start: the --share directory of `oomlab worker` "
        "(its limit, pool, broker and queue are the worker's)",
    )
    parser.add_argument("--results", default="results", help="directory for run records (default ./results)")
    parser.add_argument(
        "--timeout", type=float, help="seconds to wait for every task to be final (default: the plan's)"
    )
    parser.add_argument("--start-timeout", type=float, default=60.0, help="seconds to wait for the worker to be ready")
    parser.add_argument("--sample-hz", type=float, default=100.0, help="RSS sampling rate (default 100)")
    parser.set_defaults(func=main)


def celery_overrides(args: argparse.Namespace) -> dict:
    conf = {key: _celery_value(value) for key, value in args.celery}
    if args.max_memory_per_child:
        conf["worker_max_memory_per_child"] = max(1, parse_size(args.max_memory_per_child) // 1024)
    return conf


def build_config(args: argparse.Namespace, scenario=None, variant_name: str | None = None):
    """The run's configuration: the command line over the variant's defaults over the scenario's."""
    scenario = scenario or load_scenario(args.scenario)
    variant = scenario.variant(variant_name or args.variant)
    defaults = scenario.defaults_for(variant)
    memory = args.memory or defaults.get("memory", "256MiB")
    concurrency, pool = pool_settings(args, defaults)
    if args.tasks is not None and args.tasks < 1:
        raise BadInput(f"--tasks must be at least 1, not {args.tasks}")
    if args.backend == "docker":
        check_docker_config(parse_size(memory), args.oom_scope)
    elif args.docker_restart != "no":
        raise BadInput("--docker-restart applies to --backend docker")
    if args.sample_hz <= 0 or args.start_timeout <= 0 or (args.timeout is not None and args.timeout <= 0):
        raise BadInput("--sample-hz, --timeout and --start-timeout must be positive")
    config = RunConfig(
        scenario=scenario.name,
        memory=memory,
        memory_bytes=parse_size(memory),
        concurrency=concurrency,
        pool=pool,
        tasks=args.tasks or defaults.get("tasks"),
        variant=variant.name,
        params=scenario.resolve_params(dict(args.param)),
        broker=args.broker,
        backend=args.result_backend,
        backend_kind=args.backend,
        docker_restart=args.docker_restart,
        oom_scope=args.oom_scope,
        results_dir=args.results,
        timeout=args.timeout,
        start_timeout=args.start_timeout,
        sample_hz=args.sample_hz,
        tracemalloc=bool(args.tracemalloc if args.tracemalloc is not None else defaults.get("tracemalloc", False)),
        celery_conf={**variant.celery_conf, **celery_overrides(args)},
    )
    return scenario, config


_WORKERS_OWN = (
    "memory",
    "concurrency",
    "pool",
    "variant",
    "broker",
    "result_backend",
    "max_memory_per_child",
    "tracemalloc",
)


def attach_config(args: argparse.Namespace):
    """The run's configuration for an attached worker: the worker's settings from its share, the
    replay's (tasks, timeouts, sampling, results) from the command line."""
    given = (
        [name for name in _WORKERS_OWN if getattr(args, name)]
        + (["param"] if args.param else [])
        + (["celery"] if args.celery else [])
        + (["compare"] if args.compare else [])
    )
    if given or args.backend != "cgroup" or args.oom_scope != "process" or args.docker_restart != "no":
        flags = ", ".join("--" + name.replace("_", "-") for name in given) or "--backend/--oom-scope/--docker-restart"
        raise BadInput(f"{flags}: with --attach these are the worker's; set them on `oomlab worker`")
    share = WorkerShare.wait_for(args.attach, args.start_timeout)
    scenario = load_scenario(args.scenario)
    if load_scenario(share.scenario).name != scenario.name:
        raise BadInput(f"the worker in {args.attach} runs {share.scenario}, not {args.scenario}")
    limit = attached_limit(share.pid, share.cgroup_dir, share.cgroup_path)
    if limit is None:
        raise BadInput("the worker's memory cgroup has no limit; give the worker one (Compose: mem_limit)")
    if args.tasks is not None and args.tasks < 1:
        raise BadInput(f"--tasks must be at least 1, not {args.tasks}")
    config = RunConfig(
        scenario=scenario.name,
        memory=format_size(limit),
        memory_bytes=limit,
        concurrency=share.concurrency,
        pool=share.pool,
        tasks=args.tasks or scenario.defaults_for(scenario.variant(share.variant)).get("tasks"),
        variant=share.variant,
        params=share.params,
        broker=share.broker,
        backend=share.result_backend,
        results_dir=args.results,
        timeout=args.timeout,
        start_timeout=args.start_timeout,
        sample_hz=args.sample_hz,
        celery_conf=share.celery_conf,
        backend_kind="attached",
        attach=args.attach,
    )
    return scenario, config, share


def main(args: argparse.Namespace) -> int:
    if args.attach:
        scenario, config, share = attach_config(args)
        return _run_and_report(Run(scenario, config, share=share))
    if args.compare:
        if args.variant:
            raise BadInput("--compare runs every variant; leave out --variant")
        scenario = load_scenario(args.scenario)
        configs = [build_config(args, scenario, name)[1] for name in scenario.variants]
        if len({config.memory_bytes for config in configs}) > 1:
            raise BadInput(
                f"the variants of {scenario.name} set different memory limits; give --memory to compare them"
            )
        return run_compare(scenario, configs)
    scenario, config = build_config(args)
    return _run_and_report(Run(scenario, config))


def _run_and_report(run: Run) -> int:
    out = Console(soft_wrap=True)
    err = Console(stderr=True)
    progress = run.progress = Progress(err) if err.is_terminal else None
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
    return STATUS_EXIT_CODES.get(run.record.status, EXIT_OK)


def _print_run_dir(run: Run) -> None:
    print(run.run_dir, flush=True)
    sys.stdout.flush()
