"""Saturation: how many no-op tasks a second oomlab's load runs finish against bare Celery on the
same worker, in alternating rounds of one run (the machine's noise hits every mode alike).

Modes, each on a prefork × 2 worker with its own embedded Redis: bare Celery (bench.overhead: the
whole batch sent, then every result awaited), oomlab given the same whole batch (`--in-flight N`),
oomlab keeping a closed loop of 200 (a steady load run) and oomlab sending on an open loop at a
`--rate` above what the worker can do. Each rate is completions per second between the first and
the last task done, as a load run counts; beside it the sending side's CPU per task (the bare
client's, oomlab's whole process since its first send), which takes its share of the same 2 cores.
The headline, `oomlab_behind_percent`, is the closed loop's gap to bare Celery."""

from __future__ import annotations

import statistics

from oomlab.record.load import HarnessCost

from bench import report
from bench.noop_run import oomlab_run
from bench.overhead import timed_round

TASKS = 4000
ROUNDS = 5
IN_FLIGHT = 200
RATE = 2000  # tasks/s: above what a prefork × 2 worker does with no-op tasks (about 900/s)
TARGET_PERCENT = 5.0
BARE = "bare Celery, whole batch"
BATCH = "oomlab, whole batch (--in-flight N)"
CLOSED = f"oomlab --in-flight {IN_FLIGHT}"
OPEN = f"oomlab --rate {RATE}/s"


def _oomlab_args(mode: str, tasks: int) -> list[str]:
    if mode == BATCH:
        return ["--in-flight", str(tasks), "--tasks", str(tasks)]
    if mode == CLOSED:
        return ["--in-flight", str(IN_FLIGHT), "--tasks", str(tasks)]
    # the whole schedule's tasks, then as long as the worker needs to drain the backlog
    return ["--rate", f"{RATE}/s", "--duration", f"{tasks / RATE:g}s", "--timeout", "120"]


def measure(results_dir: str, tasks: int = TASKS, rounds: int = ROUNDS) -> dict:
    """Every mode once per round, `rounds` times: each round's rate and CPU per task, and the medians."""
    rates: dict[str, list[float]] = {BARE: [], BATCH: [], CLOSED: [], OPEN: []}
    cpu: dict[str, list[float]] = {name: [] for name in rates}
    for _ in range(rounds):
        bare = timed_round("bare", tasks)
        rates[BARE].append(bare.achieved_per_s)
        cpu[BARE].append(bare.client_cpu_s / tasks)
        for mode in (BATCH, CLOSED, OPEN):
            load, _, _ = oomlab_run(results_dir, *_oomlab_args(mode, tasks))
            rates[mode].append(load.achieved_per_s or 0.0)
            cpu[mode].append((load.harness or HarnessCost()).load_cpu_seconds / tasks)
    return summarize(tasks, rates, cpu)


def summarize(tasks: int, rates: dict[str, list[float]], cpu: dict[str, list[float]]) -> dict:
    """The saved figures: every round, the medians, each mode's gap to bare Celery (percent behind;
    negative: ahead) and CPU per task, the closed loop's gap as the headline."""
    medians = {name: statistics.median(values) for name, values in rates.items()}
    gaps = {name: 100 * (medians[BARE] - medians[name]) / medians[BARE] for name in rates if name != BARE}
    return {
        "tasks": tasks,
        "rounds": len(rates[BARE]),
        "rates": rates,
        "medians": medians,
        "cpu_per_task_s": {name: statistics.median(values) for name, values in cpu.items()},
        "cpu_rounds_s": cpu,
        "gap_percent": gaps,
        "oomlab_behind_percent": gaps.get(CLOSED),
        "batch_behind_percent": gaps.get(BATCH),
        "rate_behind_percent": gaps.get(OPEN),
    }


def show(sat: dict, out) -> None:
    report.table(
        f"achieved throughput at saturation, {sat['tasks']:,} no-op tasks, prefork × 2 "
        f"(median of {sat['rounds']} alternating rounds; completions per second, first to last)",
        ["", "median", "rounds", "vs bare", "sender CPU per task"],
        [
            [
                name,
                f"{sat['medians'][name]:.0f}/s",
                " / ".join(f"{v:.0f}" for v in values),
                f"{-sat['gap_percent'][name]:+.1f} %" if name in sat["gap_percent"] else "-",
                report.ms(sat["cpu_per_task_s"][name]),
            ]
            for name, values in sat["rates"].items()
        ],
        out,
    )
    for name in sat["gap_percent"]:
        gap = sat["gap_percent"][name]
        report.target(out, f"{name} within {TARGET_PERCENT:g} % of bare Celery ({gap:.1f} %)", gap <= TARGET_PERCENT)


def main(results_dir: str) -> dict:
    sat = measure(results_dir)
    show(sat, report.console())
    return sat
