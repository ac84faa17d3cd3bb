"""`oomlab run SCENARIO --compare`: every variant, one after another, under the same limit.

A variant whose worker cannot start (the bad `startup`) is a finding, not an error: the comparison
goes on. Errors that would hit every variant alike (no cgroup, broker down) stop it at once.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from oomlab.config.options import RunConfig
from oomlab.config.scenario import Scenario
from oomlab.errors import EXIT_OK, Interrupted, WorkerStartFailed
from oomlab.record.schema import RunRecord, write_json_atomic
from oomlab.record.typed_json import to_json
from oomlab.report.compare import render_comparison
from oomlab.report.console import report_console
from oomlab.report.hooks import standard_hooks
from oomlab.report.html import show_report, write_compare_report
from oomlab.report.terminal import render_summary
from oomlab.run.runner import Run
from rich.console import Console

COMPARE_SCHEMA = "oomlab.compare/1"


@dataclass
class Compared:
    variant: str
    run_dir: str
    record: RunRecord


def run_compare(
    scenario: Scenario, configs: list[RunConfig], out: Console | None = None, open_report: bool = False
) -> int:
    out = out or report_console()
    compared: list[Compared] = []
    path = os.path.join(configs[0].results_dir, f"compare-{time.strftime('%Y%m%d-%H%M%S')}-{scenario.name}.json")
    try:
        for config in configs:
            out.rule(f"{scenario.name} · variant {config.variant}: {scenario.variants[config.variant].description}")
            run = Run(scenario, config, hooks=standard_hooks())
            try:
                run.execute()
            except WorkerStartFailed:
                pass  # recorded in run.record; the next variant may well start
            finally:
                if os.path.isdir(run.run_dir):
                    compared.append(Compared(config.variant, run.run_dir, run.record))
                    _save(path, scenario, compared)
            render_summary(run.record, out)
            out.print(run.run_dir)
    except Interrupted:
        out.print(f"comparison interrupted; the runs so far are listed in {path}")
        raise
    out.rule(f"{scenario.name}: variants side by side")
    render_comparison([c.record for c in compared], out)
    show_report(write_compare_report(path), open_report)
    out.print(path)
    return EXIT_OK


def _save(path: str, scenario: Scenario, compared: list[Compared]) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    write_json_atomic(
        path,
        {
            "schema": COMPARE_SCHEMA,
            "scenario": scenario.name,
            "runs": [
                {
                    "variant": c.variant,
                    "run_dir": c.run_dir,
                    "status": c.record.status,
                    "summary": to_json(c.record.summary),
                }
                for c in compared
            ],
        },
    )
