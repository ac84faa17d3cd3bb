"""`oomlab agent [options] -- celery -A APP worker ...` and `oomlab replay`: the production agent's
command line (the agent itself is oomlab.agent)."""

from __future__ import annotations

import argparse
import os
import sys

from oomlab.cli.url_flags import add_url_flags, read_secret_url
from oomlab.config.sizes import MIB
from oomlab.config.validate import memory_limit, replica_name
from oomlab.errors import BadInput
from oomlab.record.printable import printable_field
from oomlab.record.redact import safe_url


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "agent",
        help="run a Celery worker as a child, detect its OOM kills and repair the tasks they hit",
        description="oomlab agent [options] -- celery -A APP worker ...",
    )
    parser.add_argument("--memory", metavar="SIZE", help="run the worker in a memory cgroup of its own with this limit")
    parser.add_argument(
        "--metrics", metavar="HOST:PORT", help="serve Prometheus /metrics there (a bare PORT binds 127.0.0.1)"
    )
    parser.add_argument(
        "--max-oom-redeliveries",
        dest="max_redeliveries",
        type=int,
        default=3,
        metavar="N",
        help="dead-letter a redelivered task after its N-th OOM kill (default 3)",
    )
    add_url_flags(
        parser, "alert_webhook", "POST one JSON per kill there (a token in the URL: --alert-webhook-from-env)"
    )
    events = parser.add_mutually_exclusive_group()
    events.add_argument(
        "--events",
        metavar="URL",
        help="publish the worker's events (start, tasks with their peaks, kills, exit) on a Redis stream, "
        "redis://HOST:PORT/DB/STREAM, for `oomlab run --fleet`; a URL with a password goes by --events-from-env",
    )
    events.add_argument("--events-from-env", dest="events_from_env", metavar="VAR", help="--events, read from VAR")
    parser.add_argument("--replica", metavar="NAME", help="this worker's name in its events (default: the host's name)")
    parser.add_argument("worker", nargs=argparse.REMAINDER, help="-- then the worker's own command, unchanged")
    parser.set_defaults(func=main)

    replay = subparsers.add_parser("replay", help="send dead-lettered tasks (from `oomlab agent`) again")
    add_url_flags(replay, "redis", "where the agents keep their dead letters", required=True)
    add_url_flags(replay, "broker", "the broker to send to (default: --app's broker_url)")
    replay.add_argument(
        "--app",
        metavar="NAME",
        help="the app as celery -A names it (its broker_url and routing then send), or its main name (default celery)",
    )
    replay.add_argument("task_ids", nargs="*", metavar="TASK_ID", help="which to send (default: list them)")
    replay.set_defaults(func=replay_main)


# Importing Celery's worker alone peaks at ~58 MiB (VmHWM, Celery 5.7, Python 3.11): below this no
# worker starts, and a smaller limit could only kill it at start, its figures reading 0.0 MiB
MIN_WORKER_MEMORY = 32 * MIB


def worker_memory(text: str | None) -> int | None:
    """--memory's bytes; an empty value or one too small for any Celery worker is refused, not run."""
    if text is None:
        return None
    _, memory = memory_limit(text, "")  # the sentence names --memory
    if memory < MIN_WORKER_MEMORY:
        raise BadInput(
            f"--memory {text} is below 32 MiB, the least the agent accepts; a worker needs more than that "
            f"(importing Celery's worker alone takes about 58 MiB): give it that plus what its tasks need"
        )
    return memory


def metrics_address(text: str | None) -> tuple[str, int] | None:
    if text is None:
        return None
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInput(f"--metrics {text!r} is not HOST:PORT or PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def main(args: argparse.Namespace) -> int:
    from oomlab.agent.command import AgentOptions, run

    command = args.worker[1:] if args.worker[:1] == ["--"] else args.worker
    if args.max_redeliveries < 1:
        raise BadInput(f"--max-oom-redeliveries must be 1 or more, not {args.max_redeliveries}")
    options = AgentOptions(
        command=command,
        memory_bytes=worker_memory(args.memory),
        metrics=metrics_address(args.metrics),
        max_redeliveries=args.max_redeliveries,
        alert_webhook=read_secret_url(args, "alert_webhook", "the alert webhook's URL"),
        events=events_url(args),
        replica=None if args.replica is None else replica_name("--replica", args.replica),
    )
    return run(options)


def events_url(args: argparse.Namespace):
    from oomlab.config.events_url import parse_events_url

    if args.events_from_env:
        text = os.environ.pop(args.events_from_env, "").strip()  # the worker (inheriting the rest) has no use for it
        if not text:
            raise BadInput(
                f"--events-from-env {args.events_from_env}: the environment has no {args.events_from_env} (or it is empty)"
            )
        return parse_events_url(text, "--events-from-env", from_argv=False)
    return parse_events_url(args.events) if args.events else None


def replay_main(args: argparse.Namespace) -> int:
    from oomlab.agent.replay import list_dead, replay

    args.redis = read_secret_url(args, "redis", "the dead letters' Redis URL")
    args.broker = read_secret_url(args, "broker", "the broker URL")
    app = args.app or "celery"
    if not args.task_ids:
        lines = list_dead(args.redis, app, args.app is not None)
        for line in lines:
            print("\t".join(map(printable_field, line)))  # ids and names another user could have written
        if not lines:  # a wrong db or app name is not an empty list: say where it looked
            print(f"oomlab: no dead letters for app {printable_field(app)} in {safe_url(args.redis)}", file=sys.stderr)
        return 0
    for old, new in replay(args.redis, args.broker, app, args.task_ids, args.app is not None):
        print(f"{printable_field(old)} sent again as {new}")
    return 0
