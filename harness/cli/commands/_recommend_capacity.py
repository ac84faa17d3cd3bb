"""The capacity modes of `oomlab recommend`: `--rate` (a fleet for a traffic target) and
`--concurrency` without `--memory` (the limit a concurrency needs). Translates flags, prints, writes
the JSON and the Kubernetes hand-over beside it."""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import asdict

from oomlab.config.app_tasks import app_queues
from oomlab.config.load_shapes import parse_duration, parse_rate
from oomlab.config.options import RunConfig
from oomlab.config.scenario import Scenario
from oomlab.config.sizes import parse_size
from oomlab.errors import EXIT_OK, BadInput, PlanRefuted
from oomlab.record.schema import write_json_atomic
from oomlab.report.capacity import command_lines, inverse_lines, proof_lines, split_lines, target_lines
from oomlab.report.console import report_console
from oomlab.report.html_capacity import write_capacity_report
from oomlab.trust import results_umask, write_private_atomic
from oomlab.workflows.recommend.flow import measure, measure_startup
from oomlab.workflows.recommend.handover import (
    LABELS,
    ONE_CLASS,
    SPLIT,
    ClassSetting,
    handover_files,
    row_setting,
    split_settings,
    with_app,
)
from oomlab.workflows.recommend.inverse import limit_for, limit_refuted, prove_limit
from oomlab.workflows.recommend.load_proof import memory_only, not_handed_over, refuted_by_oom
from oomlab.workflows.recommend.pools import pools_allowed
from oomlab.workflows.recommend.recycling import setting_recycling
from oomlab.workflows.recommend.split_proof import split_not_proven
from oomlab.workflows.recommend.target import Target, plan_for_rate
from oomlab.workflows.recommend.throughput import at_setting

SCHEMA = "oomlab.capacity/1"
DEFAULT_LADDER = ("512MiB", "1GiB", "2GiB")


def add_capacity_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("capacity (a fleet for a traffic target, or the limit a concurrency needs)")
    group.add_argument("--rate", dest="target_rate", metavar="R/s", help="tasks per second the fleet must carry")
    group.add_argument("--queue-wait-p95", metavar="S", help="p95 a task may wait, e.g. 2s or 500ms (with --rate)")
    group.add_argument("--headroom", default="20%", help="spare throughput kept per fleet (default 20%%)")
    group.add_argument("--pools", help="pools to compare, e.g. prefork,threads (default: those the scenario allows)")
    group.add_argument("--measure-seconds", default="5s", help="sending time of each throughput run (default 5s)")
    group.add_argument("--prove-seconds", default="20s", help="sending time of each proving run (default 20s)")
    group.add_argument("--max-concurrency", type=int, default=16, help="largest concurrency measured (default 16)")
    group.add_argument(
        "--concurrency", type=int, help="without --memory: the limit this concurrency needs, proven by two trials"
    )


def _fraction(text: str, flag: str) -> float:
    try:
        value = float(str(text).rstrip("%")) / 100
    except ValueError:
        raise BadInput(f"{flag} takes a percentage such as 20%, not {text!r}") from None
    if not 0 <= value <= 10:
        raise BadInput(f"{flag} must be between 0% and 1000%, not {text}")
    return value


def target_main(args: argparse.Namespace, scenario: Scenario, config: RunConfig, margin: float) -> int:
    rate = parse_rate(args.target_rate)
    wait_p95 = None if args.queue_wait_p95 is None else parse_duration(args.queue_wait_p95, "--queue-wait-p95")
    if args.max_concurrency < 1:
        raise BadInput("--max-concurrency must be at least 1")
    limits = sorted(parse_size(text) for text in (args.memory or DEFAULT_LADDER))
    asked = [p.strip() for p in args.pools.split(",")] if args.pools else None
    pools = pools_allowed(getattr(scenario.module, "POOLS", None), asked)
    unknown = [p for p in pools if p not in ("prefork", "threads", "gevent", "solo")]
    if unknown:
        raise BadInput(f"--pools takes prefork, threads, gevent and solo, not {unknown[0]!r}")
    target = Target(
        rate,
        wait_p95,
        _fraction(args.headroom, "--headroom"),
        margin,
        parse_duration(args.measure_seconds, "--measure-seconds"),
        parse_duration(args.prove_seconds, "--prove-seconds"),
        args.max_concurrency,
    )
    queues = app_queues(scenario.app)  # the app's own queues, read before a run points it at oomlab's
    out = report_console()
    out.rule(f"{scenario.name}: {rate:g} tasks/s over {', '.join(pools)} at {len(limits)} limit(s)")
    plan = plan_for_rate(scenario, config, limits, pools, target, not args.no_prove, lambda line: out.print(line))
    out.rule("fleet")
    _lines(out, target_lines(plan))
    if plan.split:
        out.rule("split queues")
        _lines(out, split_lines(plan.split, plan.split_proofs))
    if plan.proof:
        out.rule("proof under load")
        _lines(out, proof_lines(plan.proof))
    if plan.choice and (refuted := refuted_by_oom(plan.proof)):
        raise PlanRefuted(refuted)  # before anything is written: no record, page or hand-over
    handovers: dict[str, list[ClassSetting]] = {}
    warnings = {kind: "not proven (--no-prove)" if args.no_prove else "" for kind in LABELS}
    warnings[ONE_CLASS] = memory_only(plan.proof) or warnings[ONE_CLASS]
    if plan.proof and plan.proof.fleet and plan.proof.fleet.scale.scaled:  # part of the fleet proved: said
        warnings[ONE_CLASS] = "; ".join(w for w in (warnings[ONE_CLASS], plan.proof.fleet.sentence) if w)
    withheld: dict[str, str] = {}
    if plan.choice and (why := not_handed_over(plan.proof)):
        withheld[ONE_CLASS] = f"{LABELS[ONE_CLASS]}: no files written, {why}"
    elif plan.choice:
        profile = plan.profiles[plan.choice.candidate.limit_bytes]
        # the deployed class consumes every queue the user's app sends to (its default, its routes)
        handovers[ONE_CLASS] = with_app([row_setting(plan.choice, profile, margin, queues)], scenario.app_target)
    if plan.split and plan.split.dominant and all(c.replicas for c in plan.split.two_classes):
        warnings[SPLIT] = split_not_proven(plan.split_proofs, not args.no_prove)
        if args.no_prove or not warnings[SPLIT]:
            handovers[SPLIT] = with_app(split_settings(plan.split, plan.split_proofs), scenario.app_target)
        else:
            withheld[SPLIT] = f"split queues: no files written, the plan is {warnings[SPLIT]}"
    for kind, settings in handovers.items():
        out.rule(f"hand-over: {LABELS[kind]}" + (f" ({warnings[kind]})" if warnings[kind] else ""))
        _lines(out, command_lines(settings))
    _lines(out, list(withheld.values()))
    path = _path(config, scenario, "capacity")
    files = {
        kind: _handover_paths(
            path, kind, handover_files(scenario.name, settings, f"{rate:g} tasks/s, {LABELS[kind]}", warnings[kind])
        )
        for kind, settings in handovers.items()
    }
    record = {
        "schema": SCHEMA,
        "scenario": scenario.name,
        "mode": "rate",
        **asdict(plan),
        "handover": files,
        "handover_marks": {kind: warnings[kind] for kind in files if warnings[kind]},
        "handover_withheld": withheld,
    }
    return _finish(path, record, [p for paths in files.values() for p in paths])


def inverse_main(args: argparse.Namespace, scenario: Scenario, config: RunConfig, margin: float) -> int:
    if args.concurrency < 1:
        raise BadInput(f"--concurrency must be at least 1, not {args.concurrency}")
    queues = app_queues(scenario.app)  # the app's own queues, read before a run points it at oomlab's
    out = report_console()
    out.rule(
        f"{scenario.name}: the limit --concurrency {args.concurrency} needs (one child measured under {config.memory})"
    )
    profile = measure(scenario, config)
    answer = limit_for(profile, args.concurrency, margin)
    if args.concurrency > 1:  # N children starting together, under the limit one child's figures ask for
        measure_startup(scenario, at_setting(config, answer.limit_bytes, "prefork", 1), profile, args.concurrency)
        answer = limit_for(profile, args.concurrency, margin)
    if not args.no_prove:
        answer = prove_limit(scenario, config, answer, args.tasks_per_child)
    _lines(out, inverse_lines(answer))
    if why := limit_refuted(answer):
        raise PlanRefuted(why)  # before anything is written
    recycling = setting_recycling(profile, answer.limit_bytes, margin, "prefork", args.concurrency)
    setting = ClassSetting(
        "worker",
        ",".join(queues),
        1,
        answer.limit_bytes,
        "prefork",
        args.concurrency,
        recycling,
        app=scenario.app_target,
    )
    out.rule(f"hand-over: {LABELS[ONE_CLASS]}")
    _lines(out, command_lines([setting]))
    path = _path(config, scenario, "limit")
    what = f"--concurrency {args.concurrency}, one replica"
    files = {ONE_CLASS: _handover_paths(path, ONE_CLASS, handover_files(scenario.name, [setting], what))}
    record = {"schema": SCHEMA, "scenario": scenario.name, "mode": "concurrency", **asdict(answer), "handover": files}
    return _finish(path, record, files[ONE_CLASS])


def _lines(out, lines: list[str]) -> None:
    for line in lines:
        out.print(line, highlight=False, markup=False)


def _path(config: RunConfig, scenario: Scenario, kind: str) -> str:
    return os.path.join(
        config.results_dir, f"recommend-{kind}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{scenario.name}.json"
    )


def _handover_paths(json_path: str, kind: str, files: dict[str, str]) -> list[str]:
    """Each file beside the JSON (`...-celeryconfig.py`, `...-split-k8s.yaml`), as privately and
    atomically as the JSON itself (never through a planted file); their paths."""
    stem = json_path[: -len(".json")] + ("-split" if kind == SPLIT else "")
    paths = []
    for suffix, text in files.items():
        paths.append(f"{stem}-{suffix}")
        write_private_atomic(paths[-1], text, mode=0o666 & ~results_umask())
    return paths


def _finish(path: str, record: dict, handover_paths: list[str]) -> int:
    """The JSON, its HTML page beside it, then every path written (the JSON's last, for scripts)."""
    write_json_atomic(path, record)
    for line in (write_capacity_report(path), *handover_paths, path):
        print(line, flush=True)
    return EXIT_OK
