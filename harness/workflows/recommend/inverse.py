"""The inverse question: the limit a given concurrency needs, by the same margin rules as the plan
(capacity.py), proven by a trial at that limit (no OOM kill expected) and one just below it, where
the children's measured worst case no longer fits (a kill expected)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from oomlab.config.options import RunConfig
from oomlab.config.scenario import Scenario
from oomlab.config.sizes import format_size
from oomlab.workflows.recommend.capacity import LEAK_ROOM
from oomlab.workflows.recommend.profile import WorkerProfile
from oomlab.workflows.recommend.prove import Trial, run_trial
from oomlab.workflows.recommend.throughput import at_setting

MIB = 1024 * 1024


@dataclass
class LimitForConcurrency:
    concurrency: int
    limit_bytes: int  # the smallest whole MiB whose plan allows `concurrency`
    below_bytes: int  # the worst case at `concurrency` less half a child, no margin: too small
    per_child_bytes: int
    fixed_bytes: int
    held: Trial | None = None
    below: Trial | None = None
    verdict: str = ""  # what the two trials say together (prove_limit)


def per_child(profile: WorkerProfile) -> int:
    return int(profile.per_child_bytes * (1 + LEAK_ROOM)) if profile.leaking else profile.per_child_bytes


def limit_for(profile: WorkerProfile, concurrency: int, margin: float) -> LimitForConcurrency:
    """plan_capacity keeps int(limit x margin) free and needs fixed + N x per-child in the rest."""
    child = per_child(profile)
    need = profile.fixed_bytes + concurrency * child
    limit = math.ceil(need / (1 - margin) / MIB) * MIB
    below = max(MIB, (need - child // 2) // MIB * MIB)
    return LimitForConcurrency(concurrency, limit, below, child, profile.fixed_bytes)


def prove_limit(
    scenario: Scenario, config: RunConfig, answer: LimitForConcurrency, tasks_per_child: int
) -> LimitForConcurrency:
    held = run_trial(
        scenario, at_setting(config, answer.limit_bytes, "prefork", 1), answer.concurrency, tasks_per_child
    )
    if held.killed:  # refuted: the trial below it has nothing left to show
        return replace(answer, held=held, verdict=trials_verdict(replace(answer, held=held)))
    below = run_trial(
        scenario, at_setting(config, answer.below_bytes, "prefork", 1), answer.concurrency, tasks_per_child
    )
    proven = replace(answer, held=held, below=below)
    return replace(proven, verdict=trials_verdict(proven))


def limit_refuted(answer: LimitForConcurrency) -> str:
    """Why the limit is refuted by its own trial ("" when it is not): the trial at that limit was
    OOM-killed, so it is never handed over (the same rule as the plan for a --memory)."""
    held = answer.held
    if held is None or not held.killed:
        return ""
    what = held.killed_what or "the worker could not start under the limit"
    return (
        f"the plan is refuted: its own trial at {format_size(answer.limit_bytes)} with --concurrency "
        f"{answer.concurrency} was OOM-killed ({what}; {held.run_dir}), so no settings were handed over and no "
        f"files written: plan again with a larger --margin, or a smaller --concurrency"
    )


def trials_verdict(answer: LimitForConcurrency) -> str:
    """One sentence: proven (the limit held, just below was killed), conservative (both held: by how
    much, from the trial below), or not proven (the limit itself was killed)."""
    held, below = answer.held, answer.below
    limit, under = format_size(answer.limit_bytes), format_size(answer.below_bytes)
    if held is not None and held.killed:
        return (
            f"NOT proven: the trial at {limit} was OOM-killed ({held.kills} kill(s)); the children's measured "
            f"worst case under-counts this run: give a larger limit"
        )
    if held is None or below is None:
        return ""
    if below.killed:
        return f"proven: {limit} held (group peak {format_size(held.group_peak_bytes)}) and {under} was OOM-killed"
    return (
        f"conservative: the trial just below, at {under}, held too (no OOM kill, group peak "
        f"{format_size(below.group_peak_bytes)}), so {limit} is at least {format_size(answer.limit_bytes - answer.below_bytes)} "
        f"more than this run needed: its tasks' peaks did not all coincide, which the limit allows for"
    )
