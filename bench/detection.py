"""Detection latency over ≥ 30 OOM kills of pool children and ≥ 30 whole-worker kills: from the
kill's own time (the kernel's /dev/kmsg stamp, calibrated onto CLOCK_MONOTONIC; kills without a
kernel line are left out; on cgroup v1, where oomlab kills the rest of the group itself, the moment
its SIGKILL went to that process) to oomlab knowing the pid and its task; beside it Celery's main
process (its log line for the dead child), the task-failed event with WorkerLostError, and for
whole-worker kills celery.events.state's heartbeat expiry. The monitor's trace of each naming round
shows where oomlab's time went. Whole-worker kills come from delivery-lab cells on the machine's
RabbitMQ. `--kills N` sets how many of each kind."""

from __future__ import annotations

import os

from oomlab.assemble.analysis import spread
from oomlab.config.lab_cells import Cell
from oomlab.config.options import RunOptions, resolve
from oomlab.config.scenario import load_scenario
from oomlab.record.schema import Spread, load_run
from oomlab.record.typed_json import to_json
from oomlab.run.runner import Run
from oomlab.workflows.lab.delivery import LabOptions, new_lab_dir, run_lab

from bench import report

KILLS = 30  # of each kind
TARGET_CHILD_P95 = 0.002
TARGET_WORKER_P95 = 0.005
TARGET_MAX = 0.010
TARGET_RATIO = 100
STAGES = ("woke", "kmsg_read", "signalled", "named", "counters_read", "round_done")
CHILD = "oomlab, child kills (pid and task known)"
WORKER = "oomlab, whole-worker kills (pid and task known)"
CELERY_LOST = "Celery task-failed (WorkerLostError)"
EXPIRY = "heartbeat expiry (whole-worker kills)"


def child_kills(results_dir: str, kills: int) -> list[dict]:
    scenario = load_scenario(os.path.join(os.path.dirname(__file__), "killer.py"))
    options = RunOptions(memory="192MiB", concurrency=2, params={"kills": kills}, results_dir=results_dir)
    config = resolve(scenario, options)
    run = Run(scenario, config)
    run.execute()
    return [to_json(k) for k in run.record.kills]


def worker_kills(results_dir: str, kills: int) -> list[dict]:
    """Crash-loop cells (killed on every restart), three at a time, until `kills` main processes died."""
    cell = Cell("late", "on", "off", "rabbitmq", "worker", "always")
    options = LabOptions(window=20.0, jobs=3, results_dir=results_dir)
    found: list[dict] = []
    for _ in range(6):
        lab_dir = new_lab_dir(results_dir)
        results = run_lab([cell, cell, cell], options, lab_dir, lambda index, result: None)
        found += [kill for r in results if r.run_dir for kill in to_json(load_run(r.run_dir).kills)]
        if sum(1 for k in found if k["role"] == "main") >= kills:
            break
    return found


def timed(kills: list[dict]) -> list[dict]:
    """The kills with a kill time of their own: the kernel's stamp, or oomlab's SIGKILL (v1 group scope)."""
    return [k for k in kills if k["kernel_time_source"] in ("kmsg", "oomlab_group_kill")]


def summarize(children: list[dict], workers: list[dict]) -> dict:
    """The figures the benchmark prints and saves, from the kill records (as run.json has them)."""
    kills = timed(children + workers)
    child = [k for k in kills if k["role"] == "child" and k["cause"] == "oom"]
    main = [k for k in kills if k["role"] == "main"]

    def seen(group: list[dict], detector: str) -> Spread:
        return spread([k["detected"][detector] for k in group if detector in k["detected"]])

    figures = {
        CHILD: seen(child, "oomlab"),
        WORKER: seen(main, "oomlab"),
        "whole-worker kills: main process gone (pidfd)": seen(main, "pidfd"),
        "Celery main process (log: child exited)": seen(kills, "celery_pool_noticed"),
        CELERY_LOST: seen(kills, "celery_worker_lost"),
        EXPIRY: seen(main, "celery_heartbeat_expiry"),
    }
    stages = {
        kind: {stage: spread([k["stages"][stage] for k in group if stage in k.get("stages", {})]) for stage in STAGES}
        for kind, group in (("child", child), ("main", main))
    }
    ours, celery = figures[CHILD].p95, figures[CELERY_LOST].p95
    whole, expiry = figures[WORKER].p95, figures[EXPIRY].p95
    return {
        "figures": figures,
        "stages": stages,
        "ratio_p95": celery / ours if ours and celery else None,
        "whole_worker_ratio_p95": expiry / whole if whole and expiry else None,
        "kills": len(children) + len(workers),
        "timed_kills": len(kills),
        "child_kills_logged_by_kernel": sum(1 for k in children if k["kernel_time_source"] == "kmsg"),
        "child_kills": len(children),
        "kill_time_sources": sorted({k["kernel_time_source"] for k in kills}),
    }


def show(data: dict, out) -> None:
    figures: dict[str, Spread] = data["figures"]
    rows = [[name, q.n, report.ms(q.p50), report.ms(q.p95), report.ms(q.max)] for name, q in figures.items()]
    report.table("detection latency from the kill's own time", ["detector", "kills", "p50", "p95", "max"], rows, out)
    rows = [
        [f"{kind}: {stage}", q.n, report.ms(q.p50), report.ms(q.p95), report.ms(q.max)]
        for kind, stages in data["stages"].items()
        for stage, q in stages.items()
        if q.n
    ]
    report.table(
        "oomlab's naming round, stage by stage (after the kill)", ["stage", "kills", "p50", "p95", "max"], rows, out
    )
    ratio, whole_ratio = data["ratio_p95"], data["whole_worker_ratio_p95"]
    out.print(f"oomlab : Celery (task-failed) at p95 = 1 : {ratio:.0f}" if ratio else "no ratio (missing figures)")
    if whole_ratio:
        out.print(f"whole-worker kills: oomlab : heartbeat expiry at p95 = 1 : {whole_ratio:.0f}")
    child, worker = figures[CHILD], figures[WORKER]
    for text, value, limit in (
        ("child kills: p95", child.p95, TARGET_CHILD_P95),
        ("whole-worker kills: p95", worker.p95, TARGET_WORKER_P95),
        ("max over both", max((q.max for q in (child, worker) if q.max is not None), default=None), TARGET_MAX),
    ):
        report.target(out, f"{text} ≤ {limit * 1000:g} ms ({report.ms(value)})", value is not None and value <= limit)
    report.target(
        out,
        f"at least {TARGET_RATIO}× faster than Celery at p95 ({ratio:.0f}×)" if ratio else "ratio",
        ratio is not None and ratio >= TARGET_RATIO,
    )
    report.target(out, f"at least {KILLS} kills of each kind", min(child.n, worker.n) >= KILLS)
    out.print(
        f"the kernel logged {data['child_kills_logged_by_kernel']} of {data['child_kills']} child kills "
        "(the rest have no kernel timestamp and are left out)"
    )


def main(results_dir: str) -> dict:
    out = report.console()
    data = summarize(child_kills(results_dir, KILLS), worker_kills(results_dir, KILLS))
    show(data, out)
    return data
