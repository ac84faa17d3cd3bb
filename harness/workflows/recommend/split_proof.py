"""Each class of a split plan proven by its own real run: one replica of the class, at its limit, pool,
concurrency and recycling, consuming only its own queue, sent its own kinds at its share of the rate
per replica, routed by name through the split's task_routes as the hand-over's celeryconfig does.
It holds when it had no OOM kill, every task it was sent finished, only its kinds reached it, and the
queue wait asked for was met."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from oomlab.config.durations import format_seconds
from oomlab.config.options import RunConfig
from oomlab.config.scenario import Scenario
from oomlab.record.schema import load_run as read_record
from oomlab.workflows.recommend.split import SplitPlan, WorkerClass
from oomlab.workflows.recommend.throughput import LoadResult, at_setting, load_run


@dataclass
class ClassProof:
    queue: str  # the worker class
    kinds: list[str]
    limit_bytes: int
    pool: str
    concurrency: int
    run: LoadResult
    consumed: str = ""  # the queue the class's worker consumed, as its run recorded it
    sent: dict[str, int] = field(default_factory=dict)  # per task name
    succeeded: dict[str, int] = field(default_factory=dict)
    held: bool = False
    why: str = ""


def class_config(config: RunConfig, worker_class: WorkerClass, routes: dict[str, str]) -> RunConfig:
    setting = at_setting(config, worker_class.limit_bytes, worker_class.pool, worker_class.concurrency)
    return replace(
        setting,
        celery_conf={**config.celery_conf, **worker_class.recycling},
        routes=dict(routes),
        worker_class=worker_class.queue,
    )


def verdict(proof: ClassProof, queue_wait_p95_s: float | None) -> tuple[bool, str]:
    """(held, why not): the reasons a class's run does not prove it, in one sentence."""
    run = proof.run
    wrong = sorted(set(proof.sent) - set(proof.kinds))
    unfinished = sum(proof.sent.values()) - sum(proof.succeeded.values())
    problems = [
        f"{run.kills} OOM kill(s)" if run.kills else "",
        f"the worker did not start ({run.status})" if run.status == "worker_start_failed" else "",
        "no task was sent" if not proof.sent else "",
        f"{unfinished} task(s) not finished" if unfinished else "",
        f"it was sent {', '.join(wrong)}, routed to another class" if wrong else "",
        f"it consumed {proof.consumed or 'nothing'}, not its own queue"
        if not proof.consumed.endswith(f".{proof.queue}")
        else "",
    ]
    wait = run.queue_wait_p95_s
    if queue_wait_p95_s is not None and (wait is None or wait > queue_wait_p95_s):
        problems.append(
            f"queue wait p95 {'unmeasured' if wait is None else format_seconds(wait)} above {format_seconds(queue_wait_p95_s)}"
        )
    problems = [p for p in problems if p]
    return not problems, "; ".join(problems)


def prove_class(
    scenario: Scenario,
    config: RunConfig,
    worker_class: WorkerClass,
    routes: dict[str, str],
    seconds: float,
    queue_wait_p95_s: float | None,
) -> ClassProof:
    run = load_run(scenario, class_config(config, worker_class, routes), worker_class.per_replica_per_s, seconds)
    record = read_record(run.run_dir)
    by_task = record.load.by_task if record.load else {}
    proof = ClassProof(
        worker_class.queue,
        list(worker_class.kinds),
        worker_class.limit_bytes,
        worker_class.pool,
        worker_class.concurrency,
        run,
        record.worker.queue or "",
        {name: figures.counts.sent for name, figures in by_task.items()},
        {name: figures.counts.succeeded for name, figures in by_task.items()},
    )
    proof.held, proof.why = verdict(proof, queue_wait_p95_s)
    return proof


def prove_split(
    scenario: Scenario,
    config: RunConfig,
    split: SplitPlan,
    seconds: float,
    queue_wait_p95_s: float | None,
    say: Callable[[str], None] = lambda line: None,
) -> list[ClassProof]:
    """One run per class of the two-class plan (none when no kind dominates or a class fits no limit)."""
    if split.dominant is None or not all(c.replicas for c in split.two_classes):
        return []
    proofs = []
    for worker_class in split.two_classes:
        proof = prove_class(scenario, config, worker_class, split.routes, seconds, queue_wait_p95_s)
        say(
            f"queue {proof.queue} ({', '.join(proof.kinds)}): {proof.run.asked_per_s:g}/s for {seconds:g} s at "
            f"{proof.pool} x{proof.concurrency}: {proof.run.kills} OOM kill(s), "
            f"{sum(proof.succeeded.values())}/{sum(proof.sent.values())} finished, "
            f"{'held' if proof.held else 'NOT proven: ' + proof.why} · {proof.run.run_dir}"
        )
        proofs.append(proof)
    return proofs


def split_not_proven(proofs: list[ClassProof], proved: bool) -> str:
    """Why the split is not deployable as it stands, in one phrase ("" when every class held its run):
    a plan whose proof failed is not handed over, one not run (--no-prove) is handed over marked."""
    if not proved:
        return "not proven (--no-prove)"
    if not proofs:
        return "not proven: no class was run"
    failed = [f"queue {p.queue}: {p.why}" for p in proofs if not p.held]
    return "NOT proven: " + "; ".join(failed) if failed else ""
