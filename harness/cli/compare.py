"""`oomlab run SCENARIO --compare` on the terminal: each variant's summary as it ends, then the
variants side by side and the comparison's report page (the workflow, oomlab.workflows.compare,
only runs them and returns what it found)."""

from __future__ import annotations

from oomlab.config.options import RunConfig
from oomlab.config.scenario import Scenario
from oomlab.errors import EXIT_OK
from oomlab.record.schema import RunRecord
from oomlab.report.compare import render_comparison
from oomlab.report.console import report_console
from oomlab.report.html import show_report, write_compare_report
from oomlab.report.terminal import render_summary
from oomlab.workflows.compare import run_compare
from rich.console import Console


class TerminalView:
    def __init__(self, out: Console):
        self.out = out

    def variant_starts(self, scenario: Scenario, config: RunConfig) -> None:
        self.out.rule(f"{scenario.name} · variant {config.variant}: {scenario.variants[config.variant].description}")

    def variant_ran(self, run_dir: str, record: RunRecord) -> None:
        render_summary(record, self.out)
        self.out.print(run_dir)

    def interrupted(self, path: str) -> None:
        self.out.print(f"comparison interrupted; the runs so far are listed in {path}")


def compare_and_report(
    scenario: Scenario, configs: list[RunConfig], out: Console | None = None, open_report: bool = False
) -> int:
    out = out or report_console()
    comparison = run_compare(scenario, configs, TerminalView(out))
    out.rule(f"{scenario.name}: variants side by side")
    render_comparison([c.record for c in comparison.compared], out)
    show_report(write_compare_report(comparison.path), open_report)
    out.print(comparison.path)
    return EXIT_OK
