"""`oomlab baseline save RUN_DIR PATH`: keep a run's per-task peak statistics to gate later runs on."""

from __future__ import annotations

from oomlab.config.sizes import format_size
from oomlab.errors import EXIT_OK, BadInput
from oomlab.workflows.gate.baseline import refuse_overwrite, save_baseline
from oomlab.workflows.gate.flow import DEFAULT_THRESHOLDS
from oomlab.workflows.gate.run_checks import run_problems
from oomlab.workflows.gate.runs import gated_runs


def register(subparsers) -> None:
    parser = subparsers.add_parser("baseline", help="save a run's per-task peaks as a baseline for `oomlab gate`")
    actions = parser.add_subparsers(dest="action", required=True)
    save = actions.add_parser("save", help="save RUN_DIR's per-task peak statistics to PATH")
    save.add_argument("run_dir")
    save.add_argument("path")
    save.add_argument(
        "--force",
        action="store_true",
        help="replace an existing baseline, and save from a run that was not complete, had OOM kills or failed tasks",
    )
    save.set_defaults(func=main)


def main(args) -> int:
    refuse_overwrite(args.path, args.force)
    runs = gated_runs([args.run_dir])  # every task, a load run's stream too
    source, stats = runs.source, runs.stats
    failed = f"{runs.facts.failed} task(s) failed" if runs.facts.failed else None
    reasons = [runs.refusal] + [c.detail or c.threshold for c in run_problems(runs.facts)] + [failed]
    reason = "; ".join(dict.fromkeys(r for r in reasons if r))
    if reason and not args.force:
        raise BadInput(f"run {source} cannot be a baseline: {reason}; give --force to save it anyway")
    save_baseline(args.path, stats, source, runs.facts.scenario)
    for name, s in stats.items():  # growth first: what `oomlab gate` compares by default
        print(
            f"{name}: n={s.n} growth {format_size(s.growth_max)} (p95 {format_size(s.growth_p95)}) "
            f"needs {format_size(s.needs_max)} "
            f"peak {format_size(s.max)} (p95 {format_size(s.p95)}) kills {s.kills}"
        )
    print(
        f"baseline of run {source} saved to {args.path}; `oomlab gate` compares growth ({', '.join(DEFAULT_THRESHOLDS)}) "
        "unless --fail or pyproject.toml's [tool.oomlab.gate] set other thresholds"
    )
    return EXIT_OK
