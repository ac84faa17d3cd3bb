"""`oomlab lab delivery`: what really happens to a task when its worker is OOM-killed, measured
cell by cell on real workers and brokers (see harness/lab)."""

from __future__ import annotations

import argparse
import os

from oomlab.config.lab_cells import AXES, expand, parse_axis_values, parse_only
from oomlab.config.sizes import parse_size
from oomlab.errors import EXIT_OK, BadInput, Interrupted
from oomlab.report.console import report_console
from oomlab.report.delivery import cell_line, render_table
from oomlab.report.html_lab import write_lab_report
from oomlab.worker.broker import check_reachable
from oomlab.workflows.lab.delivery import LabOptions, new_lab_dir, run_lab
from rich.console import Console

AXIS_HELP = {
    "acks": "early (Celery's default) and/or late (task_acks_late)",
    "reject": "task_reject_on_worker_lost off and/or on",
    "retry": "task_retry_on_worker_lost off and/or on (Celery 5.7)",
    "broker": "redis (embedded), rabbitmq (classic queue), quorum (quorum queue with x-delivery-limit)",
    "scope": "child (the kernel kills one pool process) and/or worker (the whole worker dies, as with memory.oom.group)",
    "oom": "once (a one-off OOM) and/or always (every delivery OOMs)",
}


def register(subparsers) -> None:
    lab = subparsers.add_parser("lab", help="labs that answer one operational question with a matrix of real runs")
    labs = lab.add_subparsers(dest="lab", required=True)
    parser = labs.add_parser(
        "delivery", help="what happens to a task after an OOM kill, per acks setting, broker and kill scope"
    )
    for axis in AXES:
        parser.add_argument(f"--{axis}", metavar="VALUES", help=f"{AXIS_HELP[axis]} (comma-separated; default all)")
    parser.add_argument(
        "--only", metavar="'AXIS=VALUES ...'", help="narrow several axes at once, e.g. 'acks=late broker=quorum'"
    )
    parser.add_argument(
        "--rabbitmq-url", default=LabOptions.rabbitmq_url, help="RabbitMQ for the rabbitmq and quorum cells"
    )
    parser.add_argument("--memory", default=LabOptions.memory, help="each cell's memory limit (default %(default)s)")
    parser.add_argument(
        "--window", type=float, help="seconds to watch each cell (default: long enough for what the cell can show)"
    )
    parser.add_argument(
        "--visibility-timeout",
        type=float,
        default=LabOptions.visibility_timeout,
        help="Redis visibility_timeout in seconds (default %(default)s; kombu's own is 3600)",
    )
    parser.add_argument(
        "--restore-interval",
        type=float,
        default=LabOptions.restore_interval,
        help="kombu's unacked_restore_interval in seconds (default %(default)s, kombu's)",
    )
    parser.add_argument(
        "--restore-throttle",
        type=int,
        default=LabOptions.restore_throttle,
        help="kombu's unacked_restore_throttle (default %(default)s, kombu's)",
    )
    parser.add_argument(
        "--delivery-limit",
        type=int,
        default=LabOptions.delivery_limit,
        help="x-delivery-limit of the quorum queue (default %(default)s)",
    )
    parser.add_argument(
        "--restart-delay",
        type=float,
        default=LabOptions.restart_delay,
        help="seconds before a killed worker is started again (whole-worker cells)",
    )
    parser.add_argument("--jobs", type=int, default=LabOptions.jobs, help="cells run at once (default %(default)s)")
    parser.add_argument("--results", default="results", help="directory for the lab's records (default ./results)")
    parser.set_defaults(func=main)


def options_from(args: argparse.Namespace) -> LabOptions:
    positive = {
        "--visibility-timeout": args.visibility_timeout,
        "--restore-interval": args.restore_interval,
        "--restore-throttle": args.restore_throttle,
        "--delivery-limit": args.delivery_limit,
        "--jobs": args.jobs,
        "--window": args.window if args.window is not None else 1,
    }
    for flag, value in positive.items():
        if value <= 0:
            raise BadInput(f"{flag} must be positive, not {value}")
    if args.restart_delay < 0:
        raise BadInput(f"--restart-delay cannot be negative, not {args.restart_delay}")
    parse_size(args.memory)
    return LabOptions(
        rabbitmq_url=args.rabbitmq_url,
        memory=args.memory,
        window=args.window,
        visibility_timeout=args.visibility_timeout,
        restore_interval=args.restore_interval,
        restore_throttle=args.restore_throttle,
        restart_delay=args.restart_delay,
        delivery_limit=args.delivery_limit,
        jobs=args.jobs,
        results_dir=args.results,
    )


def main(args: argparse.Namespace) -> int:
    chosen = parse_only(args.only) if args.only else {}
    for axis in AXES:
        if getattr(args, axis):
            chosen[axis] = parse_axis_values(axis, getattr(args, axis))
    cells = expand(chosen)
    options = options_from(args)
    if any(cell.broker != "redis" for cell in cells):
        check_reachable(options.rabbitmq_url)
    out = report_console()
    err = Console(stderr=True, soft_wrap=True)
    err.print(f"delivery lab: {len(cells)} cells, {options.jobs} at a time")

    def done(index: int, result) -> None:
        err.print(f"[{index + 1}/{len(cells)}] {cell_line(result)}")

    lab_dir = new_lab_dir(options.results_dir)
    try:
        results = run_lab(cells, options, lab_dir, done)
    except Interrupted:
        print(os.path.join(lab_dir, "lab.json"), flush=True)  # the cells finished so far are in it
        raise
    render_table(results, out)
    print(write_lab_report(lab_dir), flush=True)  # the truth table with its evidence; lab.json's path last
    print(os.path.join(lab_dir, "lab.json"), flush=True)
    return EXIT_OK
