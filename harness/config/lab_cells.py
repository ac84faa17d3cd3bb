"""The delivery lab's matrix: every combination of the settings and conditions that decide what
happens to a task after an OOM kill, and how one combination becomes a run's configuration."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, fields

from oomlab.errors import BadInput

AXES: dict[str, tuple[str, ...]] = {
    "acks": ("early", "late"),  # task_acks_late off (Celery's default) / on
    "reject": ("off", "on"),  # task_reject_on_worker_lost
    "retry": ("off", "on"),  # task_retry_on_worker_lost (Celery 5.7)
    "broker": ("redis", "rabbitmq", "quorum"),  # embedded Redis, RabbitMQ classic queue, quorum queue
    "scope": ("child", "worker"),  # the kernel kills one pool child, or the whole worker (memory.oom.group)
    "oom": ("once", "always"),  # a one-off OOM, or one on every delivery
}


@dataclass(frozen=True)
class Cell:
    acks: str
    reject: str
    retry: str
    broker: str
    scope: str
    oom: str

    @property
    def key(self) -> str:
        return " ".join(f"{name}={getattr(self, name)}" for name in AXES)

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def celery_conf(self) -> dict[str, bool]:
        return {
            "task_acks_late": self.acks == "late",
            "task_reject_on_worker_lost": self.reject == "on",
            "task_retry_on_worker_lost": self.retry == "on",
        }


def parse_axis_values(axis: str, text: str) -> tuple[str, ...]:
    """`late` or `early,late` for one axis, checked against the axis's values."""
    given = [v.strip() for v in text.split(",") if v.strip()]
    values = tuple(v for v in AXES[axis] if v in given)  # the matrix's own order
    if not values or any(v not in AXES[axis] for v in given):
        raise BadInput(f"--{axis} takes {', '.join(AXES[axis])} (comma-separated), not {text!r}")
    return values


def parse_only(text: str) -> dict[str, tuple[str, ...]]:
    """`--only "acks=late broker=redis,quorum"`: the same narrowing as the axis options, in one string."""
    chosen: dict[str, tuple[str, ...]] = {}
    for part in text.replace(";", " ").split():
        axis, sep, values = part.partition("=")
        if not sep or axis not in AXES:
            raise BadInput(f"--only takes AXIS=VALUES pairs with AXIS one of {', '.join(AXES)}, not {part!r}")
        chosen[axis] = parse_axis_values(axis, values)
    return chosen


def expand(chosen: dict[str, tuple[str, ...]]) -> list[Cell]:
    """Every combination of the chosen values (all values of an axis not chosen)."""
    names = [f.name for f in fields(Cell)]
    return [Cell(*combo) for combo in itertools.product(*(chosen.get(name, AXES[name]) for name in names))]
