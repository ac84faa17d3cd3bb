"""Detection latency over 30 OOM kills of pool children and about 30 whole-worker kills: from the
kernel's kill time (its /dev/kmsg timestamp; kills without a kernel line are left out) to oomlab
knowing the pid and its task, to Celery's main process (its log line for the dead child, and the
task-failed event with WorkerLostError), and for whole-worker kills to celery.events.state's
heartbeat expiry. Whole-worker kills come from delivery-lab cells on the machine's RabbitMQ."""

from __future__ import annotations

import os

from oomlab.assemble.analysis import spread
from oomlab.config.lab_cells import Cell
from oomlab.config.options import RunOptions, resolve
from oomlab.config.scenario import load_scenario
from oomlab.record.schema import load_run
from oomlab.record.typed_json import to_json
from oomlab.run.runner import Run
from oomlab.workflows.lab.delivery import LabOptions, new_lab_dir, run_lab

from bench import report

CHILD_KILLS = 30
TARGET_P95 = 0.020
TARGET_RATIO = 100


def child_kills(results_dir: str) -> list[dict]:
    scenario = load_scenario(os.path.join(os.path.dirname(__file__), "killer.py"))
    options = RunOptions(memory="192MiB", concurrency=2, params={"kills": CHILD_KILLS}, results_dir=results_dir)
    config = resolve(scenario, options)
    run = Run(scenario, config)
    run.execute()
    return [to_json(k) for k in run.record.kills]


def worker_kills(results_dir: str) -> list[dict]:
    cell = Cell("late", "on", "off", "rabbitmq", "worker", "always")  # a crash loop: killed on every restart
    options = LabOptions(window=20.0, jobs=3, results_dir=results_dir)
    lab_dir = new_lab_dir(results_dir)
    results = run_lab([cell, cell, cell], options, lab_dir, lambda index, result: None)
    return [kill for result in results if result.run_dir for kill in to_json(load_run(result.run_dir).kills)]


def main(results_dir: str) -> dict:
    out = report.console()
    children, workers = child_kills(results_dir), worker_kills(results_dir)
    kills = children + workers
    # the kernel's timestamp where it logged one; a whole-worker kill's time is when the group was killed
    timed = [k for k in kills if k["kernel_time_source"] in ("kmsg", "oomlab_group_kill")]
    figures = {
        "oomlab, child kills (pid and task known)": spread(
            [k["detected"]["oomlab"] for k in timed if k["role"] == "child" and k["cause"] == "oom"]
        ),
        "oomlab, whole-worker kills": spread([k["detected"]["oomlab"] for k in timed if k["role"] == "main"]),
        "Celery main process (log: child exited)": spread(
            [k["detected"]["celery_pool_noticed"] for k in timed if "celery_pool_noticed" in k["detected"]]
        ),
        "Celery task-failed (WorkerLostError)": spread(
            [k["detected"]["celery_worker_lost"] for k in timed if "celery_worker_lost" in k["detected"]]
        ),
        "heartbeat expiry (whole-worker kills)": spread(
            [k["detected"]["celery_heartbeat_expiry"] for k in timed if "celery_heartbeat_expiry" in k["detected"]]
        ),
    }
    rows = [[name, q.n, report.ms(q.p50), report.ms(q.p95), report.ms(q.max)] for name, q in figures.items()]
    report.table("detection latency from the kernel's kill time", ["detector", "kills", "p50", "p95", "max"], rows, out)
    ours = figures["oomlab, child kills (pid and task known)"].p95
    celery = figures["Celery task-failed (WorkerLostError)"].p95
    ratio = celery / ours if ours and celery else None
    out.print(f"oomlab : Celery (task-failed) at p95 = 1 : {ratio:.0f}" if ratio else "no ratio (missing figures)")
    whole, expiry = (
        figures["oomlab, whole-worker kills"].p95,
        figures["heartbeat expiry (whole-worker kills)"].p95,
    )
    if whole and expiry:
        out.print(f"whole-worker kills: oomlab : heartbeat expiry at p95 = 1 : {expiry / whole:.0f}")
    report.target(
        out, f"oomlab's p95 ≤ {TARGET_P95 * 1000:g} ms ({report.ms(ours)})", ours is not None and ours <= TARGET_P95
    )
    report.target(
        out,
        f"at least {TARGET_RATIO}× faster than Celery at p95 ({ratio:.0f}×)" if ratio else "ratio",
        ratio is not None and ratio >= TARGET_RATIO,
    )
    logged = sum(1 for k in children if k["kernel_time_source"] == "kmsg")
    out.print(
        f"the kernel logged {logged} of {len(children)} child kills (the rest have no kernel timestamp and are left out)"
    )
    return {
        "figures": figures,
        "ratio_p95": ratio,
        "kills": len(kills),
        "timed_kills": len(timed),
        "child_kills_logged_by_kernel": logged,
        "child_kills": len(children),
    }
