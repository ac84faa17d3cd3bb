"""`oomlab run SCENARIO --compare`: every variant, one after another, under the same limit.

A variant whose worker cannot start (the bad `startup`) is a finding, not an error: the comparison
goes on. Errors that would hit every variant alike (no cgroup, broker down) stop it at once.
What each variant's run looks like on the way is the caller's (a CompareView); the comparison itself
is data, drawn by the report package (oomlab.cli.compare on the command line).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Protocol

from oomlab.config.options import RunConfig
from oomlab.config.scenario import Scenario
from oomlab.errors import Interrupted, WorkerStartFailed
from oomlab.record.schema import RunRecord, write_json_atomic
from oomlab.record.typed_json import to_json
from oomlab.run.runner import Run
from oomlab.run.standard import standard_hooks

COMPARE_SCHEMA = "oomlab.compare/1"


@dataclass
class Compared:
    variant: str
    run_dir: str
    record: RunRecord


class CompareView(Protocol):
    """What the caller shows as the variants run."""

    def variant_starts(self, scenario: Scenario, config: RunConfig) -> None: ...

    def variant_ran(self, run_dir: str, record: RunRecord) -> None: ...

    def interrupted(self, path: str) -> None: ...


@dataclass
class Comparison:
    path: str  # compare-*.json: the runs so far, rewritten after each
    compared: list[Compared]


def run_compare(scenario: Scenario, configs: list[RunConfig], view: CompareView) -> Comparison:
    compared: list[Compared] = []
    path = os.path.join(
        configs[0].results_dir, f"compare-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{scenario.name}.json"
    )
    try:
        for config in configs:
            view.variant_starts(scenario, config)
            run = Run(scenario, config, hooks=standard_hooks())
            try:
                run.execute()
            except WorkerStartFailed:
                pass  # recorded in run.record; the next variant may well start
            finally:
                if os.path.isdir(run.run_dir):
                    compared.append(Compared(config.variant, run.run_dir, run.record))
                    _save(path, scenario, compared)
            view.variant_ran(run.run_dir, run.record)
    except Interrupted:
        view.interrupted(path)
        raise
    return Comparison(path, compared)


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
