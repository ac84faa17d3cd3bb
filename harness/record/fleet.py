"""A fleet run's record (`oomlab run SCENARIO --fleet URL --replicas N`), written to
results/<run-id>/fleet.json and read back with a schema check, and the events the agents publish
(`oomlab agent --events URL`) that it is made from.

Every time in the record is seconds since the run's start on the Redis server's clock: each agent and
the controller measure their offset from Redis `TIME` (stated per replica under `clock`) and their
stamps are moved onto it. A replica's own durations (a task's runtime) are read on its own clock."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from oomlab.errors import BadInput
from oomlab.record.reading import read_json
from oomlab.record.typed_json import ShapeError, from_json, to_json

FLEET_SCHEMA = "oomlab.fleet/1"
# 1: replicas (hello, clock, tasks, peaks, kills), tasks (outcome, replica, times, peak), kills, figures;
#    later, optional and read as None when absent: beside (one worker's figures, --beside RUN_DIR)

RUN_START = "run_start"  # the controller's, at its start: it makes the stream (replicas of an earlier run rejoin)
# the events an agent publishes: one JSON object per stream entry, in the field `e`
WORKER_START = "worker_start"  # the worker is ready: the replica's hello (hostname, pid, limit, pool, clock,
# its memory group's usage and lifetime peak when it was sent)
TASK_START = "task_start"  # with Celery's links (parent_id, root_id, group_id) when a task sent it
TASK_END = "task_end"  # with the task's exact peak (its leaf's tree peak, else VmHWM)
KILL = "kill"  # the webhook's body, with the detection time and when it was seen
CHILD_START = "child_start"
CHILD_EXIT = "child_exit"  # a pool child said it exits (recycled by max-tasks/max-memory, or shut down)
MEMORY = "memory"  # the worker's memory group once a second and after each task's end: usage, lifetime peak
WORKER_EXIT = "worker_exit"  # the agent's worker exited (its code) and the events the agent dropped
EVENT_FIELD = "e"
STREAM_MAXLEN = 100_000

Outcome = Literal["succeeded", "failed", "killed", "lost"]
FleetStatus = Literal["complete", "replicas_missing", "tasks_lost", "interrupted"]


@dataclass
class Clock:
    offset_s: float  # the Redis server's clock minus this host's (add it to a stamp of this host)
    round_trip_s: float  # the shortest TIME round trip: the offset is known to within half of it


@dataclass
class ReplicaRecord:
    name: str
    hostname: str | None = None  # Celery's node name
    pid: int | None = None  # the worker's main process, on its host
    limit_bytes: int | None = None
    concurrency: int | None = None
    queues: list[str] | None = None  # the queues its worker consumes, as its hello said (None: not said)
    clock: Clock | None = None
    ready_s: float | None = None  # its hello, since the run's start (negative: before the controller started)
    tasks_run: int = 0
    succeeded: int = 0
    failed: int = 0
    killed: int = 0
    peak_bytes: int | None = None  # the largest task peak it reported (a killed task's at its kill included)
    peak_killed: bool = False  # peak_bytes is a killed task's, at its kill
    group_peak_bytes: int | None = None  # its memory group's peak (the whole worker) in this run: see group_peak_covers
    # "run": the kernel's peak of the group, which rose during the run (above its hello's); "samples": the
    # largest usage sampled in the run (once a second, after each task, at a kill): a lower bound; "largest
    # task": the samples were below the largest task's own peak, so that; None: no figure
    group_peak_covers: str | None = None
    kills: int = 0
    child_starts: int = 0  # pool children started after its hello: replacements (after a kill, or recycling)
    child_exits: int = 0  # pool children that said they exit (recycling)
    exit_code: int | None = None  # when its worker exited before the run ended
    events_dropped: int | None = None  # what its agent could not send (known at its worker's exit)


@dataclass
class FleetTask:
    id: str
    name: str
    label: str
    outcome: Outcome
    sent_s: float
    replica: str | None = None  # the replica that ran it (the last one, for a redelivered task)
    pid: int | None = None  # its pool process on that replica
    started_s: float | None = None
    ended_s: float | None = None
    wait_s: float | None = None  # sent to started: time in the queue
    runtime_s: float | None = None  # on the replica's own clock
    latency_s: float | None = None  # sent to final
    peak_bytes: int | None = None
    peak_exact: bool = False  # the leaf's tree peak (True) or VmHWM
    state: str | None = None
    how_known: str = "events"  # "events", or "result backend" when the task's end event never came
    sent_by: Literal["run", "worker"] = "run"  # "worker": a task of the run sent it (a chord's part, a callback)
    parent_id: str | None = None  # Celery's links, as its task_start had them
    root_id: str | None = None
    group_id: str | None = None


@dataclass
class FleetKill:
    replica: str
    pid: int
    role: str  # "pool child" | "main" | "descendant"
    cause: str  # "oom" | "sigkill"
    at_s: float | None  # the kernel's kill time (else when the agent saw it), since the run's start
    detection_s: float | None  # seen minus the kernel's kill time, on the replica
    task_id: str | None = None
    task_name: str | None = None
    peak_bytes: int | None = None
    limit_bytes: int | None = None
    group_bytes: int | None = None


@dataclass
class FleetFigures:
    sent: int = 0  # every task of the run: the controller's and those its tasks sent
    sent_by_tasks: int = 0  # of which tasks of the run sent (sent_by "worker")
    succeeded: int = 0
    failed: int = 0
    killed: int = 0
    lost: int = 0
    duration_s: float = 0.0  # first send to the last task final
    timed: int = 0  # tasks final with an end time (the throughput's and latencies' tasks)
    asked_per_s: float | None = None  # an open loop's mean rate asked for (None: the plan)
    throughput_per_s: float | None = None  # tasks final per second over duration_s
    latency_p50_s: float | None = None  # sent to final, finished tasks
    latency_p95_s: float | None = None
    latency_max_s: float | None = None
    wait_p50_s: float | None = None
    wait_p95_s: float | None = None
    peak_bytes: int | None = None  # the largest exact task peak in the fleet
    group_peak_bytes: int | None = None  # the largest replica's memory group peak in this run (see each replica's)
    backlog_max: int | None = None  # messages waiting in the queue, at most
    backlog: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, waiting)


@dataclass
class SideFigures:
    """One side of the fleet-beside-one-worker comparison, by FleetFigures' own definitions: throughput
    is tasks final per second from the first send to the last end, a killed task ends at its kill."""

    sent: int = 0
    final: int = 0  # succeeded, failed or killed
    timed: int = 0  # of which with an end time: the tasks throughput and latency are computed from
    killed: int = 0
    duration_s: float | None = None
    throughput_per_s: float | None = None
    latency_p50_s: float | None = None  # sent to final
    latency_p95_s: float | None = None
    latency_max_s: float | None = None
    peak_bytes: int | None = None  # the largest exact task peak of a task that succeeded
    group_peak_bytes: int | None = None  # the whole worker's memory group (the fleet: its largest replica's)


@dataclass
class Ratios:
    """Fleet ÷ one worker (None where either figure is missing or the worker's is 0)."""

    throughput: float | None = None
    throughput_per_replica: float | None = None  # the fleet's throughput ÷ its replicas ÷ the worker's
    latency_p50: float | None = None
    latency_p95: float | None = None
    peak: float | None = None
    group_peak: float | None = None


@dataclass
class BesideSingle:
    """One worker's figures set beside the fleet's (`--beside RUN_DIR`): another run, of the same tasks
    with the same limit and pool as each replica, so the record says which run, when and where."""

    run_id: str
    run_dir: str
    started_wall: float  # when that run started (Unix seconds, on its host's clock)
    hostname: str  # the host it ran on
    placement: str  # cgroup | docker | attached
    limit_bytes: int
    concurrency: int
    replicas: int  # the fleet's replicas that said hello: the per-replica ratio's divisor
    single: SideFigures
    fleet: SideFigures
    ratios: Ratios


@dataclass
class FleetRecord:
    run_id: str
    scenario: str
    stream: str  # the events URL, with no password
    schedule: str  # what was sent: the plan, or an open-loop schedule of the mix
    queue: str
    status: FleetStatus
    started_wall: float  # the run's start on the Redis server's clock (Unix seconds)
    replicas_expected: int
    replicas: list[ReplicaRecord] = field(default_factory=list)
    missing: int = 0  # replicas that never said hello
    missing_names: list[str] = field(default_factory=list)  # which, when --replicas named them
    controller_clock: Clock | None = None
    tasks: list[FleetTask] = field(default_factory=list)
    kills: list[FleetKill] = field(default_factory=list)
    figures: FleetFigures = field(default_factory=FleetFigures)
    events_read: int = 0
    stream_deleted: bool = False
    notes: list[str] = field(default_factory=list)
    beside: BesideSingle | None = None  # one worker's figures beside the fleet's (--beside RUN_DIR)

    def to_json(self) -> dict[str, Any]:
        return {"schema": FLEET_SCHEMA, **to_json(self)}

    @classmethod
    def from_json(cls, data: Any, source: str = "the fleet record") -> FleetRecord:
        if not isinstance(data, dict) or data.get("schema") != FLEET_SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else None
            raise BadInput(f"{source} is not an {FLEET_SCHEMA} record (schema {found!r})")
        try:
            return from_json(cls, {k: v for k, v in data.items() if k != "schema"})
        except ShapeError as error:
            raise BadInput(f"{source} does not fit {FLEET_SCHEMA}: {error}") from None


FLEET_FILE = "fleet.json"


def load_fleet(run_dir: str) -> FleetRecord:
    path = os.path.join(run_dir, FLEET_FILE)
    return FleetRecord.from_json(read_json(path, "the fleet record"), path)


def encode_event(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), allow_nan=False)
