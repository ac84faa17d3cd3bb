"""`oomlab baseline save RUN_DIR PATH`: keep a run's per-task peak statistics to gate later runs on."""

from __future__ import annotations

from harness.errors import EXIT_OK, BadInput
from harness.gate.baseline import run_facts_from, save_baseline, stats_from_run
from harness.gate.run_checks import run_problems
from harness.sizes import format_size


def register(subparsers) -> None:
    parser = subparsers.add_parser("baseline", help="save a run's per-task peaks as a baseline for `oomlab gate`")
    actions = parser.add_subparsers(dest="action", required=True)
    save = actions.add_parser("save", help="save RUN_DIR's per-task peak statistics to PATH")
    save.add_argument("run_dir")
    save.add_argument("path")
    save.set_defaults(func=main)


def main(args) -> int:
    stats, source = stats_from_run(args.run_dir)
    facts = run_facts_from(args.run_dir)
    if problems := run_problems(facts):
        reasons = "; ".join(check.detail or check.threshold for check in problems)
        raise BadInput(f"run {source} cannot be a baseline: {reasons}")
    save_baseline(args.path, stats, source, facts.scenario)
    for name, s in stats.items():
        print(f"{name}: n={s.n} peak {format_size(s.max)} p95 {format_size(s.p95)} kills {s.kills}")
    print(f"baseline of run {source} saved to {args.path}")
    return EXIT_OK
