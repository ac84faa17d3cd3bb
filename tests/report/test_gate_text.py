"""The gate's text: a table with its headers for pytest's summary, and a first run that says the
baseline was saved rather than "passed (0 checks)". Recorded verdicts, no worker."""

from __future__ import annotations

from oomlab.report.gate import COLUMNS, headline, table_lines
from oomlab.workflows.gate.verdict import Check, GateResult

MIB = 2**20


def test_the_table_has_its_headers_and_aligned_columns():
    result = GateResult([Check("shop.resize", "peak:10%", 10 * MIB, 60 * MIB, True), Check("a.b", "oom", 0, 0, False)])
    header, rule, failed, kept = table_lines(result)
    assert header.split() == list(COLUMNS)
    assert set(rule.replace(" ", "")) == {"-"} and len(rule) >= len(failed)
    assert failed.startswith("shop.resize  peak:10%") and failed.endswith("REGRESSION")
    assert kept.startswith("a.b        ") and header.index("verdict") == failed.index("REGRESSION")


def test_the_first_baseline_is_saved_not_passed():
    assert table_lines(GateResult()) == []
    first = headline(GateResult(saved="ci/baseline.json"))
    assert first == "oomlab gate: baseline saved to ci/baseline.json; the next run is compared with it"
    assert "passed" not in first
    assert headline(GateResult([Check("a.b", "oom", 0, 0, False)])) == "oomlab gate: passed (1 check(s))"
