"""The gate's text: a table with its headers for pytest's summary, and a first run that says the
baseline was saved rather than "passed (0 checks)". Recorded verdicts, no worker."""

from __future__ import annotations

from xml.etree import ElementTree

from oomlab.report.gate import COLUMNS, headline, junit_xml, markdown, table_lines
from oomlab.workflows.gate.verdict import RUN, Check, GateResult

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


def test_a_run_that_cannot_be_gated_on_failed_and_regressed_nothing():
    """No first baseline after an OOM kill: the gate fails, and says so as a failure of the run, not
    as a regression of a task that was never compared."""
    why = "the run had 1 OOM kill(s)"
    unfit = GateResult([Check(RUN, "baseline", None, None, True, detail=why), Check("a.b", "oom", 0, 0, False)])
    assert unfit.failed and unfit.unfit and not unfit.regressions
    # the reason, not the check's name: "(complete)" read as if the run were complete
    assert headline(unfit) == f"oomlab gate: failed: the run cannot be gated on ({why})"
    refused, kept = table_lines(unfit)[2:]
    assert kept.endswith("ok")
    assert refused.endswith("FAILED") and "REGRESSION" not in "\n".join(table_lines(unfit))
    assert f"| {RUN} | baseline | - | - | {why} | **FAILED** |" in markdown(unfit)
    [failure] = ElementTree.fromstring(junit_xml(unfit)).iter("failure")
    assert failure.get("message") == f"{RUN} baseline: {why}"
    both = GateResult([*unfit.checks, Check("shop.resize", "peak:10%", 10 * MIB, 60 * MIB, True)])
    assert headline(both) == (f"oomlab gate: failed: the run cannot be gated on ({why}); 1 regression(s) in 1 task(s)")
