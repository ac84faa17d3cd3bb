"""Proof under load: the chosen setting at the target rate per replica, long enough for the plan's
recycling to happen, with 0 OOM kills and the queue wait met; then one slot past the safe concurrency
at the same rate, which should be OOM-killed. A step up that holds is a verdict too: the setting is
conservative at this rate, and the proof says by how much room (the group's peak against the limit)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from oomlab.config.durations import format_seconds
from oomlab.config.options import RunConfig
from oomlab.config.scenario import Scenario
from oomlab.config.sizes import format_size
from oomlab.record.load import RecyclingFigures, SoakFindings
from oomlab.workflows.recommend.capacity import MAX_CONCURRENCY
from oomlab.workflows.recommend.fleet import FleetRow
from oomlab.workflows.recommend.fleet_proof import FleetProof, fleet_scale, run_fleet
from oomlab.workflows.recommend.profile import WorkerProfile
from oomlab.workflows.recommend.recycling import setting_recycling
from oomlab.workflows.recommend.throughput import LoadResult, at_setting, contended, load_run

RECYCLE_ROUNDS = 1.5  # a proof runs long enough for each child to be replaced this many times
MAX_PROVE_SECONDS = 300.0  # ... but no longer than this


@dataclass
class LoadProof:
    setting: LoadResult  # the chosen setting at the target rate per replica
    step_up: LoadResult | None  # one slot past the safe concurrency, same rate
    step_up_concurrency: int = 0
    per_replica_per_s: float = 0.0
    seconds: float = 0.0  # how long each run sent tasks (--prove-seconds, or longer to see recycling)
    queue_wait_met: bool | None = None  # None: no --queue-wait-p95 given
    held: bool = False  # 0 OOM kills, the run complete and the queue wait met
    kept_up: bool = False  # it finished what was sent as fast as it was sent
    step_up_killed: bool | None = None  # None: no step up was run
    step_up_room_bytes: int | None = None  # the step up held: the limit less its group peak
    verdicts: list[str] = field(default_factory=list)
    # what the run at the setting proved, in words: memory (0 OOM kills, the worker up throughout) and
    # throughput (it kept up, the queue wait met) apart, since on shared cores only the first can be
    proven: str = ""
    # the plan's fleet run (N > 1 replicas, scaled to this machine): its figures and what was proved of
    # the plan, in words ("proved 3 of 6 replicas at 3/6 of the rate ..."); None: one replica was run
    fleet: FleetProof | None = None

    @property
    def sent_per_s(self) -> float:
        """What the run at the setting was sent: the fleet's share of the rate, else one replica's."""
        return self.fleet.scale.share(self.fleet.rate) if self.fleet else self.per_replica_per_s

    @property
    def what(self) -> str:
        """What was run at the setting, in a few words."""
        if self.fleet:
            return f"{self.fleet.scale.proved} replicas at {self.sent_per_s:g}/s"
        return f"{self.per_replica_per_s:g}/s per replica"


def with_recycling(config: RunConfig, profile: WorkerProfile, margin: float) -> RunConfig:
    """Prefork runs with the plan's recycling settings, as the operator would run it."""
    recycling = setting_recycling(profile, config.memory_bytes, margin, config.pool, config.concurrency)
    if not recycling:
        return config
    return replace(config, celery_conf={**config.celery_conf, **recycling})


def recycle_seconds(config: RunConfig, per_replica: float) -> float | None:
    """Seconds until every child has been replaced once at this rate (worker_max_tasks_per_child);
    None when nothing recycles on a task count."""
    per_child = config.celery_conf.get("worker_max_tasks_per_child")
    if config.pool != "prefork" or not per_child or per_replica <= 0:
        return None
    return float(per_child) * config.concurrency / per_replica


def prove_under_load(
    scenario: Scenario,
    config: RunConfig,
    profile: WorkerProfile,
    choice: FleetRow,
    rate: float,
    seconds: float,
    margin: float,
    queue_wait_p95: float | None,
    say: Callable[[str], None],
) -> LoadProof:
    c = choice.candidate
    limit, pool, concurrency, safe = c.limit_bytes, c.pool, c.concurrency, c.safe_concurrency
    per_replica = round(rate / choice.replicas, 3)
    chosen = with_recycling(at_setting(config, limit, pool, concurrency), profile, margin)
    needed = recycle_seconds(chosen, per_replica)
    if needed:
        seconds = max(seconds, min(MAX_PROVE_SECONDS, math.ceil(RECYCLE_ROUNDS * needed)))
    scale = fleet_scale(choice.replicas, pool, concurrency, limit)
    fleet = None
    if scale.proved > 1:
        say(f"proving the fleet, {scale.sentence(rate, limit).removeprefix('proved ')}")
        held, fleet = run_fleet(scenario, chosen, scale, rate, seconds, say)
        fleet.rate = rate
        say(
            f"proved {pool} x{concurrency} on {scale.proved} of {scale.planned} replicas at {scale.share(rate):g}/s for "
            f"{seconds:g} s: {held.kills} OOM kill(s), "
            + ", ".join(f"{r.name} {r.killed} killed of {r.tasks_run}" for r in fleet.replicas)
            + f" · {held.run_dir}"
        )
    else:
        held = load_run(scenario, chosen, per_replica, seconds)
        say(
            f"proving {pool} x{concurrency} at {per_replica:g}/s for {seconds:g} s: {held.kills} OOM kill(s) · "
            f"{held.run_dir}"
        )
    proof = LoadProof(held, None, per_replica_per_s=per_replica, seconds=seconds, fleet=fleet)
    if queue_wait_p95 is not None and held.queue_wait_p95_s is not None:
        proof.queue_wait_met = held.queue_wait_p95_s <= queue_wait_p95
    proof.held = not held.kills and held.status == "complete" and proof.queue_wait_met is not False
    proof.kept_up = held.achieved_per_s is not None and not held.saturated
    if safe < MAX_CONCURRENCY:
        up = proof.step_up_concurrency = safe + 1
        stepped = proof.step_up = load_run(
            scenario, with_recycling(replace(chosen, concurrency=up), profile, margin), per_replica, seconds
        )
        say(f"one step up (x{up}): {stepped.kills} OOM kill(s) · {stepped.run_dir}")
        proof.step_up_killed = bool(stepped.kills) or stepped.status == "worker_start_failed"
        if not proof.step_up_killed and stepped.group_peak_bytes is not None:
            proof.step_up_room_bytes = limit - stepped.group_peak_bytes
    proof.verdicts = verdicts(proof, chosen, limit, margin, needed, queue_wait_p95)
    proof.proven = proven(proof)
    return proof


def memory_held(proof: LoadProof) -> bool:
    """No OOM kill at the setting, and its worker started and stayed up."""
    run = proof.setting
    return not run.kills and run.status not in ("worker_start_failed", "worker_lost")


def throughput_held(proof: LoadProof) -> bool:
    return proof.kept_up and proof.queue_wait_met is not False and proof.setting.status == "complete"


def proven(proof: LoadProof) -> str:
    """What the run at the setting proved, in one phrase (the hand-over's mark when it is memory only)."""
    run = proof.setting
    if not memory_held(proof):
        return (
            "nothing: the setting was OOM-killed"
            if run.kills
            else f"nothing: the worker did not stay up ({run.status})"
        )
    if throughput_held(proof):
        return "memory and throughput"
    if contended(run) and run.cpu is not None:
        return (
            f"memory only: 0 OOM kills at {proof.per_replica_per_s:g}/s for {proof.seconds:g} s (group peak "
            f"{format_size(run.group_peak_bytes)}); throughput NOT proven: other processes kept "
            f"{run.cpu.others_cores:.1f} of the {run.cpu.cores} cores busy, so prove the rate again where the "
            f"worker has its cores to itself"
        )
    return "memory only: throughput NOT proven (it fell behind or missed the queue wait on cores of its own)"


def memory_only(proof: LoadProof | None) -> str:
    """The mark for a setting handed over on its memory proof alone: on cores it had to share, memory
    held and throughput could not be shown ("" otherwise)."""
    if proof is None or (proof.held and throughput_held(proof)):
        return ""
    text = proof.proven or proven(proof)
    return text if text.startswith("memory only:") and contended(proof.setting) else ""


def refuted_by_oom(proof: LoadProof | None) -> str:
    """Why the chosen setting is refuted by its own proof ("" when it is not): an OOM kill at the
    setting, or a worker that could not start or stay up under its limit. Never handed over."""
    if proof is None or memory_held(proof):
        return ""
    run = proof.setting
    what = f"{run.kills} OOM kill(s)" if run.kills else f"the worker did not stay up ({run.status})"
    return (
        f"the plan is refuted: its own proof at the chosen setting ({proof.what} for "
        f"{proof.seconds:g} s) saw {what} ({run.run_dir}), so no settings were handed over and no files written: "
        f"plan again with a larger --margin or a larger --memory candidate"
    )


def not_handed_over(proof: LoadProof | None) -> str:
    """Why the chosen setting is not handed over ("" when it is): its proof under load did not hold. The
    same rule as the split's classes: a setting that failed its proof is no deployable hand-over. One
    whose memory held on cores it had to share is handed over, marked (memory_only)."""
    if proof is None or proof.held or memory_only(proof):
        return ""
    return "the proof under load did NOT hold" + (f": {proof.verdicts[0]}" if proof.verdicts else "")


def verdicts(
    proof: LoadProof,
    chosen: RunConfig,
    limit: int,
    margin: float,
    recycle_s: float | None,
    queue_wait_p95: float | None,
) -> list[str]:
    """What the proving runs showed, one sentence each: held or not, recycling, the leak slope, the step up."""
    held = proof.setting
    return [
        _held(proof, queue_wait_p95),
        _recycling(held.recycling or RecyclingFigures(), chosen, recycle_s, proof.seconds),
        _slope(held.soak or SoakFindings(), chosen.pool),
        _step_up(proof, limit, margin),
    ]


def _held(proof: LoadProof, queue_wait_p95: float | None) -> str:
    run = proof.setting
    wait = format_seconds(run.queue_wait_p95_s)
    target = (
        ""
        if queue_wait_p95 is None
        else f" ({'met' if proof.queue_wait_met else 'NOT met'}: --queue-wait-p95 {queue_wait_p95:g})"
    )
    verdict = "held" if proof.held else "did NOT hold"
    return (
        f"the setting {verdict}: {run.kills} OOM kill(s), {run.tasks_done} tasks finished at "
        f"{run.achieved_per_s or 0:.2f}/s of {proof.sent_per_s:g}/s sent for {proof.seconds:g} s"
        f"{_behind(proof)}, queue wait p95 {wait}{target}, group peak {format_size(run.group_peak_bytes)} ({run.status})"
    )


def _behind(proof: LoadProof) -> str:
    if proof.kept_up:
        return ""
    run = proof.setting
    if contended(run) and run.cpu is not None:
        return (
            f" (it fell behind while other processes kept {run.cpu.others_cores:.1f} of the {run.cpu.cores} cores "
            f"busy: prove again on a machine the worker has to itself)"
        )
    if proof.fleet:
        return f" (it fell behind: {proof.fleet.scale.proved} replicas do not carry their share of the rate here)"
    return " (it fell behind: one replica does not carry this rate here, fewer than the table measured)"


def _recycling(section: RecyclingFigures, chosen: RunConfig, recycle_s: float | None, seconds: float) -> str:
    replaced = section.children_recycled
    conf, parts = chosen.celery_conf, []
    if "worker_max_tasks_per_child" in conf:
        parts.append(f"worker_max_tasks_per_child={conf['worker_max_tasks_per_child']}")
    if "worker_max_memory_per_child" in conf:
        parts.append(f"worker_max_memory_per_child={conf['worker_max_memory_per_child']} KiB")
    settings = ", ".join(parts)
    if not replaced:
        if not settings:
            return "recycling: none set and none seen (no leak was measured)"
        expected = (
            f"; every child is due for replacement after {format_seconds(recycle_s)} at this rate" if recycle_s else ""
        )
        return f"recycling: {settings}, no child replaced in {seconds:g} s{expected}"
    cost = section.replacement_seconds.p50
    dip = section.throughput_dip
    took = f", a replacement took {format_seconds(cost)} at the median while work waited" if cost is not None else ""
    dipped = (
        f"; {dip.per_s_in_seconds_with_a_replacement:g}/s in seconds with a replacement against "
        f"{dip.per_s_otherwise:g}/s otherwise"
        if dip
        else ""
    )
    return f"recycling ({settings or 'Celery'}): {replaced} children replaced{took}{dipped}"


def _slope(soak: SoakFindings, pool: str) -> str:
    growth = soak.growth_per_1000_tasks_per_child_bytes
    who = "pool child" if pool == "prefork" else f"{pool} process"
    if growth is None:
        return f"leak slope: {soak.fit or f'not enough data (too few tasks in each {who})'}"
    sign = "grew" if growth >= 0 else "shrank"
    return (
        f"leak slope: each {who} {sign} {format_size(abs(growth))} per 1,000 tasks "
        f"({soak.fit or ('a steady line' if soak.significant else 'within noise, not a steady line')}; "
        f"{soak.children_measured} measured)"
    )


def _step_up(proof: LoadProof, limit: int, margin: float) -> str:
    up, n = proof.step_up, proof.step_up_concurrency
    if up is None:
        return f"no step up: the model fits {MAX_CONCURRENCY} slots or more, so memory does not bound this setting"
    if proof.step_up_killed:
        return (
            f"one step up (concurrency {n}) at the same rate: {up.kills} OOM kill(s) "
            f"({up.status}): the safe concurrency is a measured boundary · {up.run_dir}"
        )
    room = proof.step_up_room_bytes
    margin_bytes = int(limit * margin)
    spent = (up.group_peak_bytes or 0) - (limit - margin_bytes)
    if spent > 0:
        why = (
            f"it spent {format_size(spent)} of the {format_size(margin_bytes)} margin: the setting is conservative by "
            f"the margin only (kept for page cache, allocator slack and what a short run cannot show)"
        )
    else:
        why = (
            f"it stayed {format_size(-spent)} below the limit less the margin: the setting is conservative for this "
            f"mix at this rate by at least one slot (the plan sizes every slot for the largest task at once, which "
            f"this run did not reach; a longer or busier run may)"
        )
    return (
        f"one step up (concurrency {n}) HELD at the same rate: its group peaked at {format_size(up.group_peak_bytes)}, "
        f"{format_size(room)} below the limit; {why} · {up.run_dir}"
    )
