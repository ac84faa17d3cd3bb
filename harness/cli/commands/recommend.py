"""`oomlab recommend SCENARIO --memory SIZE`: measure one worker, plan the largest safe concurrency and
the recycling settings, compare with the rules operators use, and prove the plan with trial runs."""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import asdict

from oomlab.cli.args import add_broker_settings, key_value, run_options
from oomlab.cli.commands._recommend_capacity import add_capacity_flags, inverse_main, target_main
from oomlab.config.options import resolve
from oomlab.config.scenario import load_scenario
from oomlab.errors import EXIT_NO_SAFE_SETTING, EXIT_OK, BadInput, PlanRefuted
from oomlab.record.schema import write_json_atomic
from oomlab.report.console import report_console
from oomlab.report.html_recommend import write_recommend_report
from oomlab.report.recommend import render_plan, render_profile, snippet
from oomlab.workflows.recommend.capacity import vpa_rule
from oomlab.workflows.recommend.flow import recommend

SCHEMA = "oomlab.recommend/1"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "recommend", help="safe --concurrency and worker_max_memory_per_child for a limit, proven by running them"
    )
    parser.add_argument(
        "scenario", help="a built-in scenario name or a scenario .py file (its task mix is what is planned for)"
    )
    parser.add_argument(
        "--memory",
        action="append",
        help="the worker's memory limit, e.g. 2GiB (with --rate: a candidate limit, may be repeated)",
    )
    parser.add_argument(
        "--pool", choices=("prefork",), default="prefork", help="the pool (prefork; threads and solo share one process)"
    )
    parser.add_argument("--variant", help="scenario variant (default: the scenario's first)")
    parser.add_argument("--param", action="append", type=key_value, default=[], metavar="KEY=VALUE")
    parser.add_argument("--celery", action="append", type=key_value, default=[], metavar="SETTING=VALUE")
    parser.add_argument("--tasks", type=int, help="tasks in the measuring run (default: the scenario's)")
    parser.add_argument(
        "--max-oom-redeliveries",
        type=int,
        metavar="N",
        help="in each measuring and trial run, stop a task id OOM-killed N times (a poison message; default 3)",
    )
    parser.add_argument("--tasks-per-child", type=int, default=3, help="tasks per child in each trial run (default 3)")
    parser.add_argument("--margin", default="10%", help="share of the limit kept free (default 10%%)")
    parser.add_argument("--no-prove", action="store_true", help="plan only; skip the trial runs")
    add_broker_settings(parser)
    parser.add_argument("--results", default="results", help="directory for records (default ./results)")
    parser.add_argument("--start-timeout", type=float, default=60.0)
    add_capacity_flags(parser)
    parser.set_defaults(func=main)


def _margin(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / 100
    except ValueError:
        raise BadInput(f"--margin takes a percentage such as 10%, not {text!r}") from None
    if not 0 <= value < 0.9:
        raise BadInput(f"--margin must be between 0% and 90%, not {text}")
    return value


def main(args: argparse.Namespace) -> int:
    margin = _margin(args.margin)
    if args.tasks_per_child < 1:
        raise BadInput("--tasks-per-child must be at least 1")
    scenario = load_scenario(args.scenario)
    memory = (args.memory or [None])[0]
    config = resolve(scenario, run_options(args, concurrency=1, memory=memory))  # one child is measured first
    if args.target_rate:
        return target_main(args, scenario, config, margin)
    if args.concurrency is not None and not args.memory:
        return inverse_main(args, scenario, config, margin)
    if not args.memory or len(args.memory) > 1 or args.concurrency is not None:
        raise BadInput(
            "recommend takes one --memory (the limit to plan for), --rate R/s (a fleet, several --memory allowed) "
            "or --concurrency N without --memory (the limit N needs)"
        )
    out = report_console()
    out.rule(f"{scenario.name} · variant {config.variant} · measuring one child under {config.memory}")

    trials: list = []

    def announce(trial) -> None:
        if not trials:  # the header only over trials that ran (none when no setting is safe)
            out.rule("trial runs")
        trials.append(trial)
        out.print(f"concurrency {trial.concurrency}: {'OOM-killed' if trial.killed else 'no OOM'} · {trial.run_dir}")

    def measured(profile) -> None:
        render_profile(profile, out)

    result = recommend(scenario, config, margin, args.tasks_per_child, not args.no_prove, measured, announce)
    profile, plan, proof = result.profile, result.plan, result.proof
    vpa = _vpa(proof) if proof else None
    out.rule("capacity plan")
    render_plan(plan, vpa, proof, out)
    if proof and proof.recommended:
        out.print(f"each trial: {proof.recommended.filled(args.tasks_per_child)}", highlight=False, markup=False)
    refuted(proof)
    text = snippet(plan, config.memory, scenario.app_target)
    if text:
        out.rule("settings")
        out.print(text, highlight=False, markup=False)
    path = os.path.join(
        config.results_dir, f"recommend-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{scenario.name}.json"
    )
    write_json_atomic(
        path,
        {
            "schema": SCHEMA,
            "scenario": scenario.name,
            "variant": config.variant,
            "limit_bytes": config.memory_bytes,
            "profile": asdict(profile),
            "plan": asdict(plan),
            "vpa": asdict(vpa) if vpa else None,
            "proof": asdict(proof) if proof else None,
            "snippet": text,
        },
    )
    print(write_recommend_report(path), flush=True)  # report.html beside the record; the record's path last
    print(path, flush=True)
    return EXIT_NO_SAFE_SETTING if plan.no_safe_setting else EXIT_OK


def refuted(proof) -> None:
    """A plan whose own trial at the recommended setting saw an OOM kill is never handed over."""
    trial = proof.recommended if proof else None
    if trial is None or not trial.killed:
        return
    what = trial.killed_what or "the worker could not start under the limit"
    raise PlanRefuted(
        f"the plan is refuted: its own trial at --concurrency {trial.concurrency} was OOM-killed ({what}; "
        f"{trial.run_dir}), so no settings were handed over and no files written: plan again with a larger "
        f"--margin or --memory, or route that task to a worker class of its own (oomlab recommend --rate)"
    )


def _vpa(proof):
    """VPA's rule on the recommended trial's usage samples, and after the first trial that was killed."""
    from oomlab.record.files import csv_rows

    recommended = proof.recommended
    samples = [int(row["usage_bytes"]) for row in csv_rows(os.path.join(recommended.run_dir, "group.csv"))]
    killed = next((t for t in proof.trials if t.killed), None)
    return vpa_rule(samples, killed.group_peak_bytes if killed else None)
