"""Command-line arguments that several commands share, and their translation into `RunOptions`:
commands only translate; every rule about what a value may be lives in `oomlab.config.options`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from oomlab.cli.load_args import load_config
from oomlab.cli.url_flags import add_url_flags
from oomlab.config.options import POOLS, RunOptions


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"takes key=value, not {text!r}")
    return key, value


def add_worker_settings(parser: argparse.ArgumentParser, pools: tuple[str, ...] = POOLS) -> None:
    """What the worker runs: shared by `oomlab run`, `oomlab worker` and `oomlab recommend`."""
    parser.add_argument("--concurrency", type=int, help="pool size (default: the scenario's)")
    parser.add_argument("--pool", choices=pools, help="Celery pool (default prefork)")
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
    parser.add_argument(
        "--max-oom-redeliveries",
        type=int,
        metavar="N",
        help="stop a task id OOM-killed N times (a poison message: acks_late + reject_on_worker_lost "
        "deliver it again after every kill); outcome poison, with a finding (default 3; 0: never)",
    )


def add_broker_settings(parser: argparse.ArgumentParser) -> None:
    add_url_flags(parser, "broker", "use this broker URL instead of the embedded Redis")
    add_url_flags(
        parser, "result_backend", "result backend URL (default: the broker if it is Redis, else the embedded Redis)"
    )


def add_placement(parser: argparse.ArgumentParser) -> None:
    """Where the worker runs; `--backend` is the old name, kept for a release with a warning."""
    parser.add_argument(
        "--placement",
        choices=("cgroup", "docker"),
        help="where the worker runs: a memory cgroup of oomlab's own (default), or a Docker container with the limit",
    )
    parser.add_argument("--backend", choices=("cgroup", "docker"), help=argparse.SUPPRESS)


def placement_of(args: argparse.Namespace) -> str:
    if getattr(args, "backend", None):
        print("oomlab: --backend is deprecated; use --placement (it will be removed)", file=sys.stderr)
        if args.placement and args.placement != args.backend:
            from oomlab.errors import BadInput

            raise BadInput("--backend (deprecated) and --placement disagree; give --placement only")
    return getattr(args, "placement", None) or getattr(args, "backend", None) or "cgroup"


def run_options(args: argparse.Namespace, **fixed: Any) -> RunOptions:
    """The user's choices on the command line (absent flags stay None); `fixed` sets what a
    command decides itself (recommend measures one child)."""
    given: dict[str, Any] = {
        "memory": _arg(args, "memory"),
        "concurrency": _arg(args, "concurrency"),
        "pool": _arg(args, "pool"),
        "tasks": _arg(args, "tasks"),
        "variant": _arg(args, "variant"),
        "params": dict(_arg(args, "param", [])),
        "celery": dict(_arg(args, "celery", [])),  # typed by Celery's own settings table (harness/config/validate.py)
        "max_memory_per_child": _arg(args, "max_memory_per_child"),
        "max_oom_redeliveries": _arg(args, "max_oom_redeliveries", 3),
        "tracemalloc": _arg(args, "tracemalloc"),
        "broker": _arg(args, "broker"),
        "result_backend": _arg(args, "result_backend"),
        "placement": placement_of(args),
        "docker_restart": _arg(args, "docker_restart", "no"),
        "oom_scope": _arg(args, "oom_scope", "process"),
        "results_dir": _arg(args, "results", "results"),
        "timeout": _arg(args, "timeout"),
        "start_timeout": _arg(args, "start_timeout", 60.0),
        "sample_hz": _arg(args, "sample_hz", 100.0),
        "profile": _arg(args, "profile"),
        "profile_native": bool(_arg(args, "profile_native", False)),
        "load": load_config(args),  # a load run's shape: {} without --rate/--stages/--in-flight
    }
    return RunOptions(**{**given, **fixed})


def _arg(args: argparse.Namespace, name: str, default: Any = None) -> Any:
    value = getattr(args, name, None)
    return default if value is None else value
