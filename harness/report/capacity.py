"""Console lines for capacity planning: the fleet table, the split-queue plan, the proving runs and
the inverse mode's limit; plain text the user can paste."""

from __future__ import annotations

from oomlab.config.durations import format_seconds
from oomlab.config.sizes import format_size
from oomlab.workflows.recommend.fleet import FleetRow
from oomlab.workflows.recommend.handover import ClassSetting, worker_command
from oomlab.workflows.recommend.inverse import LimitForConcurrency
from oomlab.workflows.recommend.load_proof import LoadProof
from oomlab.workflows.recommend.split import SplitPlan, WorkerClass
from oomlab.workflows.recommend.split_proof import ClassProof
from oomlab.workflows.recommend.target import TargetPlan


def _wait(seconds: float | None) -> str:
    return "unbounded" if seconds is None else format_seconds(seconds)


def table_lines(rows: list[FleetRow]) -> list[str]:
    lines = [
        "replicas  limit      pool      conc  per-replica/s  total       headroom  queue wait p95 (model)  measured"
    ]
    for row in rows:
        c = row.candidate
        if not row.safe and not row.replicas:
            lines.append(
                f"{'-':>8}  {format_size(c.limit_bytes):<9}  {c.pool:<8}  {c.concurrency:>4}  not safe: {row.why}"
            )
            continue
        lines.append(
            f"{row.replicas:>8}  {format_size(c.limit_bytes):<9}  {c.pool:<8}  {c.concurrency:>4}  "
            f"{c.per_replica_per_s or 0:>13.2f}  {format_size(row.total_bytes):<10}  {row.headroom:>8.0%}  "
            f"{_wait(row.expected_queue_wait_p95_s):>22}  {c.measured_s:g} s{'' if row.safe else ' · ' + row.why}"
            f"{' · ' + c.note if c.note else ''}"
            f"{f' · projected: {c.measured_per_s}/s measured while other processes held the cores' if c.contention else ''}"
        )
    return lines


def _class(c: WorkerClass) -> str:
    if not c.replicas:
        return f"queue {c.queue} ({', '.join(c.kinds)}): fits under no candidate limit"
    return (
        f"queue {c.queue} ({', '.join(c.kinds)}, {c.share:.0%} of the tasks): {c.replicas} x "
        f"{format_size(c.limit_bytes)} {c.pool} at concurrency {c.concurrency} ({format_size(c.per_child_bytes)} "
        f"per child) = {format_size(c.total_bytes)}, each replica sent {c.per_replica_per_s:g}/s"
    )


def class_proof_line(proof: ClassProof) -> str:
    run = proof.run
    wait = "-" if run.queue_wait_p95_s is None else _wait(run.queue_wait_p95_s)
    verdict = "held" if proof.held else f"NOT proven: {proof.why}"
    return (
        f"  proven: {run.asked_per_s:g}/s for {run.seconds:g} s on its own queue, "
        f"{sum(proof.succeeded.values())}/{sum(proof.sent.values())} tasks finished, {run.kills} OOM kill(s), "
        f"{run.recycled} children recycled, queue wait p95 {wait}, group peak {format_size(run.group_peak_bytes)}: "
        f"{verdict} · {run.run_dir}"
    )


def split_lines(split: SplitPlan, proofs: list[ClassProof] | None = None) -> list[str]:
    if split.dominant is None:
        return [split.sentence]
    by_queue = {p.queue: p for p in proofs or []}
    lines = [f"{split.dominant} dominates the peak", "one class for everything:"]
    lines += [f"  {_class(c)}" for c in split.one_class]
    lines.append(f"  total {format_size(sum(c.total_bytes for c in split.one_class))}")
    lines.append("two classes (task_routes send each kind to its queue):")
    for c in split.two_classes:
        lines.append(f"  {_class(c)}")
        if c.queue in by_queue:
            lines.append(class_proof_line(by_queue[c.queue]))
    lines.append(f"  total {format_size(sum(c.total_bytes for c in split.two_classes))}")
    failed = [p for p in proofs or [] if not p.held]
    if failed:  # not an alternative to the proven choice: no saving is claimed, no file is handed over
        why = "; ".join(f"queue {p.queue}: {p.why}" for p in failed)
        return [*lines, f"two classes NOT proven ({why}): not handed over"]
    proven = "each class proven by its own run" if proofs else "not proven"
    saving = split.saving_bytes
    if saving > 0:
        lines.append(f"two classes save {format_size(saving)} ({proven})")
    else:
        lines.append(f"two classes cost {format_size(-saving)} more than one at this rate ({proven})")
    return lines


def command_lines(settings: list[ClassSetting]) -> list[str]:
    return [f"{s.name}: {s.replicas} x {format_size(s.limit_bytes)}: {' '.join(worker_command(s))}" for s in settings]


def proof_lines(proof: LoadProof) -> list[str]:
    """The verdicts the proving runs carry (load_proof.verdicts), and where each run is."""
    runs = [f"runs: {proof.setting.run_dir}" + (f" · step up {proof.step_up.run_dir}" if proof.step_up else "")]
    proven = [f"proven: {proof.proven}"] if proof.proven else []
    fleet = []
    if proof.fleet:
        fleet = [f"the fleet: {proof.fleet.sentence}"] + [
            f"  {r.name}: ran {r.tasks_run}, {r.succeeded} succeeded, {r.killed} OOM-killed, group peak "
            f"{format_size(r.group_peak_bytes)}"
            for r in proof.fleet.replicas
        ]
        fleet.append(
            f"  fleet.json: throughput {proof.fleet.throughput_per_s or 0:g} tasks/s (first send to last end), "
            f"latency p95 {format_seconds(proof.fleet.latency_p95_s)}, queue wait p95 "
            f"{format_seconds(proof.fleet.wait_p95_s)} · {proof.fleet.fleet_dir}"
        )
        if proof.fleet.missing or proof.fleet.lost:
            fleet.append(f"  {proof.fleet.missing} replica(s) never said hello, {proof.fleet.lost} task(s) lost")
    return fleet + proof.verdicts + proven + runs


def target_lines(plan: TargetPlan) -> list[str]:
    lines = table_lines(plan.rows)
    if plan.choice:
        c = plan.choice.candidate
        lines.append(
            f"cheapest safe: {plan.choice.replicas} x {format_size(c.limit_bytes)} {c.pool} --concurrency "
            f"{c.concurrency} = {format_size(plan.choice.total_bytes)} for {plan.target.rate:g} tasks/s"
        )
        lines += plan.why
    else:
        lines.append("no candidate carries the rate safely: give larger --memory values")
    return lines


def inverse_lines(answer: LimitForConcurrency) -> list[str]:
    lines = [
        f"--concurrency {answer.concurrency} needs {format_size(answer.limit_bytes)}: "
        f"{format_size(answer.fixed_bytes)} fixed + {answer.concurrency} x {format_size(answer.per_child_bytes)} "
        f"per child, plus the margin"
    ]
    trials = (("at that limit", answer.limit_bytes, answer.held), ("just below", answer.below_bytes, answer.below))
    for what, limit, trial in trials:
        if trial:
            lines.append(
                f"{what}, {format_size(limit)} ({trial.run_dir}): {'OOM-killed' if trial.killed else 'no OOM'}, "
                f"{trial.kills} kill(s), group peak {format_size(trial.group_peak_bytes)}, {trial.tasks} tasks"
            )
    return lines + ([answer.verdict] if answer.verdict else [])
