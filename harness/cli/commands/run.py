"""`oomlab run SCENARIO`: a real worker under a real limit, the scenario replayed, the record written."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from oomlab.cli.args import add_broker_settings, add_placement, add_worker_settings, run_options
from oomlab.cli.fleet import add_fleet_flags, fleet_main, wants_fleet
from oomlab.cli.load_args import add_load_flags
from oomlab.config import validate
from oomlab.config.options import RunConfig, resolve
from oomlab.config.scenario import Scenario, load_scenario
from oomlab.config.sizes import format_size
from oomlab.errors import EXIT_OK, STATUS_EXIT_CODES, BadInput, Interrupted, OomlabError, UnknownTaskNames
from oomlab.report.console import report_console
from oomlab.report.hooks import standard_hooks
from oomlab.report.terminal import LoadLive, Progress, render_summary
from oomlab.run.runner import Run
from rich.console import Console

if TYPE_CHECKING:
    from oomlab.worker.share import WorkerShare


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="replay a scenario against a real worker under a memory limit")
    parser.add_argument(
        "scenario", help="a built-in scenario name (see `oomlab scenarios`) or a path to a scenario .py file"
    )
    parser.add_argument("--memory", help="memory limit for the worker's group, e.g. 256MiB (default: the scenario's)")
    add_worker_settings(parser)
    parser.add_argument("--tasks", type=int, help="how many tasks to replay (default: the scenario's)")
    add_load_flags(parser)  # a load run: --rate/--duration, --stages, --in-flight, --seed
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
    parser.add_argument(
        "--profile",
        metavar="NAME[,NAME...]|all",
        help="memray per execution of these tasks, in the pool child: the sites that held the memory at "
        "each one's peak (or its OOM kill), a flame graph each (needs oomlab[profile])",
    )
    parser.add_argument(
        "--profile-native",
        action="store_true",
        default=None,
        help="with --profile: memray records native (C) frames too (numpy's, PIL's allocators), "
        "at a cost per allocation; Python frames only without it",
    )
    add_broker_settings(parser)
    add_placement(parser)
    parser.add_argument(
        "--docker-restart",
        choices=("no", "on-failure", "always"),
        help="the container's restart policy (--placement docker): a start-up OOM becomes a crash loop",
    )
    parser.add_argument(
        "--oom-scope",
        choices=("process", "group"),
        help="process: the kernel kills one victim (Docker, default); group: the whole worker dies (Kubernetes)",
    )
    parser.add_argument(
        "--attach",
        metavar="DIR",
        help="replay against a worker oomlab did not start: the --share directory of `oomlab worker` "
        "(its limit, pool, broker and queue are the worker's)",
    )
    parser.add_argument("--results", default="results", help="directory for run records (default ./results)")
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds to wait for every task to be final (default: the plan's, or 1 s per task and pool process if longer)",
    )
    parser.add_argument("--start-timeout", type=float, default=60.0, help="seconds to wait for the worker to be ready")
    parser.add_argument("--sample-hz", type=float, default=100.0, help="RSS sampling rate (default 100)")
    parser.add_argument("--open", action="store_true", help="open the run's report.html in a browser afterwards")
    add_fleet_flags(parser)
    parser.set_defaults(func=main)


_WORKERS_OWN = (
    "memory",
    "concurrency",
    "pool",
    "variant",
    "broker",
    "result_backend",
    "max_memory_per_child",
    "tracemalloc",
    "param",
    "celery",
    "compare",
    "placement",
    "backend",
    "oom_scope",
    "docker_restart",
    "profile",
    "profile_native",
)


def attach_config(args: argparse.Namespace, scenario: Scenario) -> tuple[RunConfig, WorkerShare]:
    """The run's configuration for an attached worker: the worker's settings from its share, the
    replay's (tasks, timeouts, sampling, results) from the command line."""
    from oomlab.worker.limits.attached import attached_limit
    from oomlab.worker.share import WorkerShare

    given = [name for name in _WORKERS_OWN if getattr(args, name, None)]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise BadInput(f"{flags}: with --attach these are the worker's; set them on `oomlab worker`")
    share = WorkerShare.wait_for(args.attach, args.start_timeout)
    share.check_runs(scenario, args.attach)  # never importing the scenario worker.json names
    limit = attached_limit(share.pid, share.cgroup_dir, share.cgroup_path)
    if limit is None:
        raise BadInput("the worker's memory cgroup has no limit; give the worker one (Compose: mem_limit)")
    options = run_options(
        args,
        memory=format_size(limit),
        concurrency=share.concurrency,
        pool=share.pool,
        variant=share.variant,
        broker=share.broker,
        result_backend=share.result_backend,
    )
    config = resolve(scenario, options)
    config = replace(
        config,
        memory_bytes=limit,
        params=share.params,
        celery_conf=share.celery_conf,
        placement="attached",
        attach=args.attach,
    )
    return config, share


def main(args: argparse.Namespace) -> int:
    validate.results_dir(args.results)  # before anything starts: a file, a name too long, read-only
    scenario = load_scenario(args.scenario)
    if wants_fleet(args):
        return fleet_main(args, scenario)
    if args.attach:
        config, share = attach_config(args, scenario)
        return _run_and_report(scenario, config, share, args.open)
    options = run_options(args)
    if args.compare:
        if args.variant:
            raise BadInput("--compare runs every variant; leave out --variant")
        configs = [resolve(scenario, options, name) for name in scenario.variants]
        if len({config.memory_bytes for config in configs}) > 1:
            raise BadInput(
                f"the variants of {scenario.name} set different memory limits; give --memory to compare them"
            )
        from oomlab.cli.compare import compare_and_report  # the variants' report pages: with --compare only

        return compare_and_report(scenario, configs, open_report=args.open)
    return _run_and_report(scenario, resolve(scenario, options), open_report=args.open)


def _run_and_report(
    scenario: Scenario, config: RunConfig, share: WorkerShare | None = None, open_report: bool = False
) -> int:
    out = report_console()  # full width in a file or CI log: no task name cut at 80 columns
    err = Console(stderr=True, emoji=False)
    # a load run: a live panel on a terminal, a line every few seconds otherwise
    progress: Progress | LoadLive | None = LoadLive(err) if config.load else Progress(err) if err.is_terminal else None
    run = Run(scenario, config, hooks=[*standard_hooks(), *([progress] if progress else [])], share=share)
    try:
        run.execute()
    except (OomlabError, Interrupted) as stop:
        if progress:
            progress.end()
        if run.record.worker.pid and not isinstance(stop, UnknownTaskNames):  # a worker ran: its findings
            render_summary(run.record, out)
        _print_run_dir(run)
        raise
    if progress:
        progress.end()
    render_summary(run.record, out)
    if open_report:
        from oomlab.report.html import REPORT_FILE, show_report

        show_report(os.path.join(run.run_dir, REPORT_FILE), open_report)
    _print_run_dir(run)
    return STATUS_EXIT_CODES.get(run.record.status, EXIT_OK)


def _print_run_dir(run: Run) -> None:
    if not run.run_dir_made or not os.path.isdir(run.run_dir):  # refused before it was made: nothing to show
        return
    print(run.run_dir, flush=True)
    sys.stdout.flush()
