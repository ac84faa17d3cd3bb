"""`oomlab run SCENARIO --fleet URL --replicas N --broker URL`: the scenario's plan sent to a fleet of
agent-wrapped replicas, one record made from their events (oomlab.workflows.fleet), summed up here."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from oomlab.cli.fleet_beside import beside_lines
from oomlab.config.durations import format_seconds
from oomlab.config.events_url import parse_events_url
from oomlab.config.load_shapes import shape_from_flags
from oomlab.config.scenario import Scenario
from oomlab.config.sizes import format_size
from oomlab.config.validate import replica_name
from oomlab.errors import EXIT_OK, EXIT_TIMED_OUT, EXIT_WORKER_START, BadInput, Interrupted
from oomlab.record.fleet import FLEET_FILE, Clock, FleetRecord
from oomlab.record.printable import printable_field

if TYPE_CHECKING:
    from oomlab.workflows.fleet.run import FleetOptions

# what the replicas decide for themselves (their agents' and workers' command lines)
_REPLICAS_OWN = (
    "memory",
    "concurrency",
    "pool",
    "celery",
    "max_memory_per_child",
    "max_oom_redeliveries",
    "compare",
    "attach",
    "placement",
    "backend",
    "oom_scope",
    "docker_restart",
    "profile",
    "tracemalloc",
)


def add_fleet_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("fleet (replicas started elsewhere under `oomlab agent --events`)")
    given = group.add_mutually_exclusive_group()
    given.add_argument(
        "--fleet",
        metavar="URL",
        help="drive a fleet: read its agents' events on this Redis stream, redis://HOST:PORT/DB/STREAM "
        "(the URL the agents got with --events); a URL with a password goes by --fleet-from-env",
    )
    given.add_argument("--fleet-from-env", dest="fleet_from_env", metavar="VAR", help="--fleet, read from VAR")
    group.add_argument(
        "--replicas",
        metavar="N|NAME,...",
        help="how many replicas the fleet has, or their names (each agent's --replica), so a missing one is named",
    )
    group.add_argument(
        "--queue", metavar="NAME", help="the queue the replicas consume (with --fleet; default oomlab.SCENARIO)"
    )
    group.add_argument(
        "--beside",
        metavar="RUN_DIR",
        help="set one worker's figures beside the fleet's: the directory of a complete `oomlab run SCENARIO "
        "--memory M --concurrency C` of the same tasks, with the replicas' limit and pool",
    )
    group.add_argument(
        "--hello-timeout",
        dest="hello_timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="how long to wait for every replica's hello (with --fleet; default 60)",
    )


def wants_fleet(args: argparse.Namespace) -> bool:
    """A fleet run; refused: --beside without --fleet (one run has nothing to set beside it)."""
    fleet = bool(getattr(args, "fleet", None) or getattr(args, "fleet_from_env", None))
    if getattr(args, "beside", None) is not None and not fleet:
        raise BadInput("--beside sets one worker's figures beside a fleet's: give it with --fleet")
    return fleet


def fleet_options(args: argparse.Namespace, scenario: Scenario) -> FleetOptions:
    # the fleet's workflow loads with a fleet run only: `oomlab run`'s other modes never hold it
    from oomlab.workflows.fleet.beside import read_single
    from oomlab.workflows.fleet.run import FleetOptions

    if args.fleet_from_env:
        text = os.environ.get(args.fleet_from_env, "").strip()
        if not text:
            raise BadInput(
                f"--fleet-from-env {args.fleet_from_env}: the environment has no {args.fleet_from_env} (or it is empty)"
            )
        events = parse_events_url(text, "--fleet-from-env", from_argv=False)
    else:
        events = parse_events_url(args.fleet, "--fleet")
    given = [name for name in _REPLICAS_OWN if getattr(args, name, None)]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise BadInput(f"{flags}: with --fleet these are the replicas'; set them on their agents and workers")
    shape = shape_from_flags(args.rate, args.duration, args.stages, args.in_flight, args.tasks, args.seed)
    if shape is not None and shape.kind == "closed":
        raise BadInput("--in-flight (a closed loop) is not built for fleets yet; give --rate/--duration or --stages")

    single = None
    if args.beside is not None:
        if not args.beside.strip():
            raise BadInput("--beside needs the single-worker run's directory (it was given empty)")
        if shape is not None:
            raise BadInput("--beside compares a replay of the plan: give it without --rate, --duration or --stages")
        single = read_single(args.beside, scenario, args.variant, dict(args.param or []), args.tasks)
    count, names = replicas_given(args.replicas)
    if not args.broker:
        raise BadInput("--fleet needs --broker URL (or --broker-from-env): the broker the replicas consume from")
    if args.hello_timeout <= 0:
        raise BadInput(f"--hello-timeout must be above 0 s, not {args.hello_timeout:g}")
    return FleetOptions(
        events=events,
        replicas=count,
        replica_names=names,
        broker=args.broker,
        result_backend=args.result_backend,
        queue=args.queue or f"oomlab.{scenario.name}",
        variant=args.variant,
        params=dict(args.param or []),
        tasks=args.tasks,
        shape=shape,
        hello_timeout_s=args.hello_timeout,
        timeout_s=args.timeout,
        results=args.results,
        beside=single,
    )


def replicas_given(text: str | None) -> tuple[int, list[str] | None]:
    """--replicas 3, or --replicas r1,r2,r3 (the names each agent gives with --replica)."""
    text = (text or "").strip()
    if text.isdigit() and int(text) >= 1:
        return int(text), None
    names = [name.strip() for name in text.split(",")]
    if not text or text.isdigit() or text.lstrip("-").isdigit() or len(set(names)) != len(names):
        raise BadInput(
            "--fleet needs --replicas N (1 or more) or --replicas NAME,NAME,... (each agent's --replica, once each)"
        )
    return len(names), [replica_name("--replicas", name) for name in names]


def fleet_main(args: argparse.Namespace, scenario: Scenario) -> int:
    from oomlab.workflows.fleet.run import FleetRun

    options = fleet_options(args, scenario)

    def say(sentence: str) -> None:
        print(f"oomlab: {printable_field(sentence)}", file=sys.stderr, flush=True)  # names from the stream in it

    run = FleetRun(scenario, options, say)
    say(f"fleet run {run.run_id}: waiting for {options.replicas} replica(s) on {options.events.shown}")
    try:
        record = run.execute()
    except Interrupted:
        if os.path.isfile(os.path.join(run.run_dir, FLEET_FILE)):
            say(f"interrupted: the fleet run's partial record is {os.path.join(run.run_dir, FLEET_FILE)}")
        raise
    print_summary(record)
    print(run.run_dir, flush=True)
    if record.missing:
        return EXIT_WORKER_START
    return EXIT_TIMED_OUT if record.figures.lost else EXIT_OK


def print_summary(record: FleetRecord) -> None:
    f = record.figures
    by_tasks = f" ({f.sent_by_tasks} sent by tasks)" if f.sent_by_tasks else ""
    lines = [
        f"fleet {record.scenario}: {len(record.replicas)} of {record.replicas_expected} replicas, queue {record.queue}",
        f"sent: {record.schedule}",
        f"tasks: {f.sent} sent{by_tasks}, {f.succeeded} succeeded, {f.failed} failed, {f.killed} killed, {f.lost} lost",
        f"throughput {f.throughput_per_s if f.throughput_per_s is not None else '-'} tasks/s over "
        f"{format_seconds(f.duration_s)}; latency p50 {format_seconds(f.latency_p50_s)}, p95 "
        f"{format_seconds(f.latency_p95_s)}, max {format_seconds(f.latency_max_s)}; queue wait p50 "
        f"{format_seconds(f.wait_p50_s)}; backlog at most {f.backlog_max if f.backlog_max is not None else '-'}",
        f"largest task peak in the fleet {format_size(f.peak_bytes)}; largest replica group peak "
        f"{format_size(f.group_peak_bytes)}",
    ]
    for r in record.replicas:
        clock = _clock(r.clock) if r.clock else "no hello"
        lines.append(
            f"  {printable_field(r.name)}: limit {format_size(r.limit_bytes)}, pool {printable_field(r.concurrency or '-')}, "
            f"ran {r.tasks_run}, "
            f"{r.succeeded} succeeded, {r.killed} killed, largest task peak {format_size(r.peak_bytes)}"
            f"{' (killed, at its kill)' if r.peak_killed else ''}, group peak {format_size(r.group_peak_bytes)}"
            f"{_COVERS.get(r.group_peak_covers or '', '')}, {clock}"
        )
    for k in record.kills:
        task = f"task {printable_field(k.task_name or '?')} ({printable_field(k.task_id)})" if k.task_id else "no task"
        detection = f", seen in {_detection(k.detection_s)}" if k.detection_s is not None else ""
        lines.append(
            f"  kill on {printable_field(k.replica)}: {printable_field(k.role)} pid {k.pid} ({printable_field(k.cause)}), "
            f"{task}, peak "
            f"{format_size(k.peak_bytes)}{detection}"
        )
    if record.controller_clock:
        lines.append(f"  controller: {_clock(record.controller_clock)}")
    if record.beside:
        lines.extend(beside_lines(record.beside))
    if record.missing:
        named = f" ({', '.join(map(printable_field, record.missing_names))})" if record.missing_names else ""
        lines.append(f"  {record.missing} replica(s) never said hello on {record.stream}{named}")
    for note in record.notes:
        lines.append(f"  note: {printable_field(note)}")
    lines.append(f"record: {FLEET_FILE} (the stream {'was deleted' if record.stream_deleted else 'was NOT deleted'})")
    print("\n".join(lines), flush=True)


_COVERS = {  # what a replica's group peak covers (ReplicaRecord.group_peak_covers)
    "run": " (this run's)",
    "samples": " (sampled in this run: a lower bound)",
    "largest task": " (its largest task's: the samples were lower)",
}


def _detection(seconds: float) -> str:
    """A kill's detection time: below a millisecond (the agent's stamps are ms) is "< 1 ms", not "0 ms"."""
    return "< 1 ms" if seconds < 0.001 else format_seconds(seconds)


def _clock(clock: Clock) -> str:
    """A host's offset from the Redis server's clock, in µs (hosts a network apart differ by ms or more)."""
    return f"clock {clock.offset_s * 1e6:+.0f} µs from Redis TIME (±{clock.round_trip_s * 1e6 / 2:.0f} µs)"
