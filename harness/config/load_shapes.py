"""Load shapes and their send schedules, parsed from the command line.

Open loop (k6's constant- and ramping-arrival-rate): a task is due at a time fixed in advance,
sent whether or not the worker keeps up. A ramp's stage goes linearly from the previous stage's
target (0/s before the first) to its own over its duration, as in k6. Closed loop: N tasks
outstanding at any moment, the next sent when one becomes final.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from oomlab.config.bounds import MAX_IN_FLIGHT, MAX_TASKS, count, span
from oomlab.errors import BadInput

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|m|h))?\s*$")


def parse_duration(text: str, what: str = "--duration") -> float:
    """Seconds from 500ms, 30s, 10m, 1.5h or a bare number of seconds."""
    match = _DURATION.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise BadInput(f"{what} takes a positive duration such as 30s, 10m or 1h, not {text!r}")
    return span(what, float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def parse_rate(text: str, what: str = "--rate", allow_zero: bool = False) -> float:
    """Tasks per second from 50/s, 600/m, 50 (per second)."""
    match = _RATE.match(str(text))
    if not match or (float(match.group(1)) <= 0 and not allow_zero):
        positive = "" if allow_zero else "positive "
        raise BadInput(f"{what} takes a {positive}rate such as 50/s or 600/m, not {text!r}")
    return float(match.group(1)) / _UNIT_SECONDS[match.group(2)]


@dataclass(frozen=True)
class Stage:
    duration: float
    target: float  # tasks per second reached at the stage's end


def parse_stages(text: str) -> list[Stage]:
    """`30s:50/s,5m:50/s,30s:0/s`: each stage a duration and the rate it reaches by its end."""
    stages = []
    for part in str(text).split(","):
        duration, sep, target = part.partition(":")
        if not sep:
            raise BadInput(f"--stages takes DURATION:RATE stages joined by commas (30s:50/s,5m:50/s), not {part!r}")
        stages.append(Stage(parse_duration(duration, "a stage"), parse_rate(target, "a stage", allow_zero=True)))
    if not any(stage.target > 0 for stage in stages):
        raise BadInput(f"--stages {text!r} never rises above 0/s: no task would be sent")
    span("--stages", sum(stage.duration for stage in stages))
    _scheduled("--stages", stages_count(stages))
    return stages


PLAN = "plan"  # a plan of many tasks sent like a load: each call at its `at`, `in_flight` at most outstanding


@dataclass(frozen=True)
class LoadShape:
    """What `--rate/--duration`, `--stages` or `--in-flight` asked for (kind: rate | stages | closed),
    or a plan run too large to hold (kind: plan, oomlab.run.plan)."""

    kind: str
    duration: float | None  # seconds of sending (None: a closed loop that stops after `tasks`)
    rate: float = 0.0
    stages: tuple[Stage, ...] = ()
    in_flight: int = 0
    tasks: int | None = None  # a closed loop may stop after this many tasks instead
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LoadShape:
        stages = tuple(Stage(**stage) for stage in data.get("stages", ()))
        return cls(**{**data, "stages": stages})

    @property
    def sending_s(self) -> float:
        """How long sending may go on (a closed loop that counts tasks: no limit)."""
        return math.inf if self.duration is None else self.duration

    @property
    def asked_per_s(self) -> float | None:
        """The mean rate the schedule asks for (None for a closed loop)."""
        if self.kind == "rate":
            return self.rate
        if self.kind == "stages":
            return stages_count(self.stages) / sum(stage.duration for stage in self.stages)
        return None

    def due_times(self) -> Iterator[float]:
        """Seconds after the start at which each task is due (open loop only)."""
        if self.kind == "rate" and self.duration is not None:
            return constant_schedule(self.rate, self.duration)
        if self.kind == "stages":
            return ramp_schedule(self.stages)
        raise ValueError("a closed loop has no schedule")


def shape_from_flags(
    rate: str | None, duration: str | None, stages: str | None, in_flight: int | None, tasks: int | None, seed: int
) -> LoadShape | None:
    """The shape the flags describe (None: no load flag, the scenario's plan as before)."""
    # an empty value is a value: `--stages ''` is refused, never read as "no load flag"
    if stages is not None and (rate is not None or in_flight is not None):
        raise BadInput("--stages sets its own rates; leave out --rate and --in-flight")
    if rate is not None and in_flight is not None:
        raise BadInput("--rate is open loop and --in-flight closed loop; give one of them")
    if tasks is not None and (rate is not None or stages is not None):
        raise BadInput("--tasks applies to the plan or to --in-flight; an open loop sends what its schedule asks")
    if stages is not None:
        if duration is not None:
            raise BadInput("--stages sets its own duration; leave out --duration")
        parsed = parse_stages(stages)
        return LoadShape("stages", sum(s.duration for s in parsed), stages=tuple(parsed), seed=seed)
    if rate is not None:
        if duration is None:
            raise BadInput("--rate needs --duration (e.g. --rate 50/s --duration 10m)")
        shape = LoadShape("rate", parse_duration(duration), rate=parse_rate(rate), seed=seed)
        _scheduled("--rate", shape.rate * shape.sending_s)
        return shape
    if in_flight is not None:
        count("--in-flight", in_flight, MAX_IN_FLIGHT)
        if tasks is not None:
            count("--tasks", tasks, MAX_TASKS)
        if duration is None and tasks is None:
            raise BadInput("--in-flight needs --duration or --tasks to say when to stop")
        return LoadShape(
            "closed",
            parse_duration(duration) if duration is not None else None,
            in_flight=in_flight,
            tasks=tasks,
            seed=seed,
        )
    if duration is not None:
        raise BadInput("--duration applies to --rate or --in-flight")
    return None


def _scheduled(flag: str, tasks: float) -> None:
    """An open loop's schedule is built as it runs: its size is bounded like --tasks."""
    if not tasks <= MAX_TASKS:  # NaN and inf too
        raise BadInput(f"{flag} asks for {tasks:.3g} tasks; a run sends at most {MAX_TASKS:,}")


def constant_schedule(rate: float, duration: float) -> Iterator[float]:
    """Task i is due at i / rate, for every i with i / rate < duration (k6: constant-arrival-rate)."""
    count = math.ceil(rate * duration - 1e-9)
    return (index / rate for index in range(count))


def stages_count(stages: tuple[Stage, ...] | list[Stage]) -> float:
    """How many tasks the ramp asks for: the integral of its piecewise-linear rate."""
    total, previous = 0.0, 0.0
    for stage in stages:
        total += (previous + stage.target) / 2 * stage.duration
        previous = stage.target
    return total


def ramp_schedule(stages: tuple[Stage, ...] | list[Stage]) -> Iterator[float]:
    """Task i is due when the integral of the rate since the start reaches i: the exact inverse of
    the piecewise-linear rate, so a ramp sends as many tasks as its area, each on its own time."""
    start, previous, base, sent = 0.0, 0.0, 0.0, 0
    for stage in stages:
        r0, r1, length = previous, stage.target, stage.duration
        slope = (r1 - r0) / length
        base_next = base + (r0 + r1) / 2 * length
        while sent < base_next - 1e-9:
            need = sent - base  # tasks into this stage: solve r0·t + slope·t²/2 = need for t
            if r0 > 0 and abs(slope) < 1e-12:  # flat (a ramp from 0 always takes the root below)
                offset = need / r0
            else:
                offset = (-r0 + math.sqrt(max(0.0, r0 * r0 + 2 * slope * need))) / slope
            yield start + min(offset, length)
            sent += 1
        start, previous, base = start + length, r1, base_next
