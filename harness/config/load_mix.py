"""A task mix: weighted kinds of task call, each with an argument generator, drawn one call at a time
from a seeded RNG. The same seed gives the same calls in the same order, and nothing holds more than
the call being sent.

A scenario declares one with `mix(ctx) -> Mix` beside `plan(ctx)`; a load run of a scenario without a
mix sends its plan's calls over and over in order.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from oomlab.config.scenario import RunContext, Scenario, TaskCall, call_reader
from oomlab.errors import ScenarioFailed

Draw = Callable[[random.Random], tuple]


@dataclass(frozen=True)
class Kind:
    """One kind of call: its task, its share of the mix, and how its arguments are drawn."""

    task: str
    weight: float
    args: Draw
    label: str = ""


@dataclass(frozen=True)
class Mix:
    kinds: tuple[Kind, ...]

    def __post_init__(self) -> None:
        if not self.kinds or any(kind.weight < 0 for kind in self.kinds) or not any(k.weight for k in self.kinds):
            raise ValueError("a mix needs at least one kind and non-negative weights, not all zero")

    def calls(self, seed: int) -> Iterator[TaskCall]:
        """An endless stream of calls, reproducible from `seed`."""
        rng = random.Random(seed)
        cumulative = list(itertools.accumulate(kind.weight for kind in self.kinds))
        while True:
            kind = self.kinds[bisect.bisect_right(cumulative, rng.random() * cumulative[-1])]
            args = kind.args(rng)
            yield TaskCall(kind.task, args, label=kind.label)


def long_tail(median: float, p99: float, cap: float | None = None) -> Callable[[random.Random], float]:
    """A lognormal draw with the given median and 99th percentile (most values near the median, a few
    far above it), capped at `cap`: the shape of payload sizes and request costs in practice."""
    sigma = math.log(p99 / median) / 2.3263  # z of the 99th percentile
    mu = math.log(median)

    def draw(rng: random.Random) -> float:
        value = rng.lognormvariate(mu, sigma)
        return min(value, cap) if cap is not None else value

    return draw


def call_source(
    scenario: Scenario, ctx: RunContext, seed: int, only: frozenset[str] | None = None
) -> tuple[Iterator[TaskCall], str]:
    """The calls a load run sends, and where they come from (the scenario's mix, else its plan cycled);
    `only`: these task names alone (a split run's worker class, oomlab.config.routing)."""
    among = "" if only is None else f", only {', '.join(sorted(only))}"
    make_mix = getattr(scenario.module, "mix", None)
    if make_mix is not None:
        try:
            mix = make_mix(ctx)
        except Exception as exc:
            raise ScenarioFailed(f"scenario {scenario.name} failed in mix(): {type(exc).__name__}: {exc}") from None
        kinds = tuple(kind for kind in mix.kinds if only is None or kind.task in only)
        if not any(kind.weight for kind in kinds):
            raise ScenarioFailed(f"scenario {scenario.name}'s mix has no call of {', '.join(sorted(only or ()))}")
        return _guarded(scenario.name, Mix(kinds).calls(seed)), f"the scenario's mix (seed {seed}{among})"
    calls = scenario.plan(ctx).calls  # a PlanCalls is read by index, round after round: never copied
    if only is not None:
        calls = [call for call in calls if call.task in only]
    if not calls:
        raise ScenarioFailed(f"scenario {scenario.name} has no mix and its plan has no calls to send{among}")
    call = call_reader(scenario.name, calls)
    rounds = (call(index % len(calls)) for index in itertools.count())
    return rounds, f"the scenario's plan of {len(calls)} calls{among}, repeated"


def sent_names(scenario: Scenario, ctx: RunContext, only: frozenset[str] | None = None) -> list[str]:
    """Every task name a load run may send (its mix's kinds, else its plan's calls)."""
    make_mix = getattr(scenario.module, "mix", None)
    if make_mix is not None:
        return sorted({kind.task for kind in make_mix(ctx).kinds if only is None or kind.task in only})
    return sorted({call.task for call in scenario.plan(ctx).calls if only is None or call.task in only})


def _guarded(name: str, calls: Iterator[TaskCall]) -> Iterator[TaskCall]:
    """A mix's argument generator is scenario code: its error is the scenario's, in one sentence."""
    while True:
        try:
            call = next(calls)
        except Exception as exc:
            raise ScenarioFailed(
                f"scenario {name} failed drawing a call from its mix: {type(exc).__name__}: {exc}"
            ) from None
        yield call
