"""A run's configuration: what the user chose (`RunOptions`, from any front end) resolved once,
against the scenario's and the variant's defaults, into a checked `RunConfig`.

The CLI, the pytest session, the delivery lab, recommend and the benchmarks all build `RunOptions`
and call `resolve`: one set of rules, one set of error sentences, whichever door the user came in by.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

from oomlab.config import bounds, validate
from oomlab.config.profile import profile_names
from oomlab.config.scenario import RunContext
from oomlab.config.sizes import parse_size
from oomlab.errors import BadInput

if TYPE_CHECKING:
    from oomlab.config.scenario import Scenario

Placement = Literal["cgroup", "docker", "attached"]
OomScope = Literal["process", "group"]
Restart = Literal["no", "always"]
DockerRestart = Literal["no", "on-failure", "always"]
ContainerStarter = Literal["sdk", "cli", "testcontainers"]

POOLS = ("prefork", "solo", "threads", "gevent", "eventlet")
PLACEMENTS: tuple[Placement, ...] = ("cgroup", "docker", "attached")
DEFAULT_MEMORY = "256MiB"
DEFAULT_CONCURRENCY = 2
DOCKER_MIN_MEMORY = 6 * 1024 * 1024  # Docker refuses --memory below 6 MiB


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs to know, checked; saved as the record's `config`."""

    scenario: str
    memory: str
    memory_bytes: int
    concurrency: int
    pool: str = "prefork"
    tasks: int | None = None
    variant: str = "default"
    params: dict[str, Any] = field(default_factory=dict)
    broker: str | None = None  # None: the embedded Redis
    result_backend: str | None = None  # None: the broker when it is Redis, else the embedded Redis
    oom_scope: OomScope = "process"
    results_dir: str = "results"
    timeout: float | None = None
    start_timeout: float = 60.0
    sample_hz: float = 100.0
    tracemalloc: bool = False
    celery_conf: dict[str, Any] = field(default_factory=dict)
    queue_arguments: dict[str, Any] = field(default_factory=dict)  # e.g. x-queue-type quorum, x-delivery-limit
    restart: Restart = "no"  # always: start a new worker when the main process dies (a restart policy)
    restart_delay: float = 1.0
    settle: float = 0.3  # seconds to keep watching once every task is final
    max_oom_redeliveries: int = 3  # a task id OOM-killed this many times is stopped (poison); 0: never
    placement: Placement = "cgroup"  # where the worker runs and what bounds its memory
    docker_restart: DockerRestart = "no"  # Docker's restart policy for the worker's container
    container_starter: ContainerStarter = (
        "sdk"  # sdk: the Docker SDK | testcontainers: as the pytest plugin does (cli: old name of sdk)
    )
    attach: str | None = None  # the share directory of a worker oomlab did not start (`oomlab worker`)
    profile: tuple[str, ...] = ()  # task names memray tracks per execution ("all": every task); empty: none
    profile_native: bool = False  # --profile-native: memray records native (C) frames too
    timeout_used: float | None = None  # the plan's timeout when none was given, filled in at replay
    load: dict[str, Any] = field(default_factory=dict)  # a load run's LoadShape as a dict; empty: replay the plan
    # split queues (oomlab.config.routing): task name -> worker class, and the class this run's worker is
    routes: dict[str, str] = field(default_factory=dict)
    worker_class: str = ""  # empty: one queue for every task, sent to it directly
    min_tasks: int | None = None  # repeat the plan's calls until this many are sent (recommend's proofs)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def context(self, run_dir: str) -> RunContext:
        """What the scenario's plan and teardown see of a run."""
        return RunContext(
            limit_bytes=self.memory_bytes,
            concurrency=self.concurrency,
            pool=self.pool,
            variant=self.variant,
            tasks=self.tasks,
            params=self.params,
            run_dir=run_dir,
            inputs_dir=os.path.join(os.path.abspath(self.results_dir), ".inputs"),
        )


@dataclass(frozen=True)
class RunOptions:
    """What the user chose, from any front end; None means "not given": the variant's default, then
    the scenario's, then oomlab's own applies."""

    memory: str | None = None
    concurrency: int | None = None
    pool: str | None = None
    tasks: int | None = None
    variant: str | None = None
    params: dict[str, Any] = field(default_factory=dict)  # strings from a command line, or values
    celery: dict[str, Any] = field(default_factory=dict)
    max_memory_per_child: str | None = None
    tracemalloc: bool | None = None
    broker: str | None = None
    result_backend: str | None = None
    placement: Placement = "cgroup"
    docker_restart: DockerRestart = "no"
    oom_scope: OomScope = "process"
    results_dir: str = "results"
    timeout: float | None = None
    start_timeout: float = 60.0
    sample_hz: float = 100.0
    restart: Restart = "no"
    restart_delay: float = 1.0
    settle: float = 0.3
    max_oom_redeliveries: int = 3  # 0: let a poison message loop (the delivery lab watches the loop)
    queue_arguments: dict[str, Any] = field(default_factory=dict)
    container_starter: ContainerStarter = "sdk"
    profile: str | None = None  # --profile NAME[,NAME...]|all
    profile_native: bool = False  # --profile-native
    load: dict[str, Any] = field(default_factory=dict)  # a load run: --rate/--stages/--in-flight


def resolve(scenario: Scenario, options: RunOptions, variant_name: str | None = None) -> RunConfig:
    """The run's configuration: `options` over the variant's defaults over the scenario's, checked."""
    variant = scenario.variant(variant_name or options.variant)
    defaults = scenario.defaults_for(variant)
    memory, memory_bytes = validate.memory_limit(options.memory, defaults.get("memory", DEFAULT_MEMORY))
    concurrency = options.concurrency if options.concurrency is not None else defaults.get("concurrency", 2)
    pool = options.pool or defaults.get("pool", "prefork")
    tasks = options.tasks if options.tasks is not None else defaults.get("tasks")
    tracemalloc = options.tracemalloc if options.tracemalloc is not None else defaults.get("tracemalloc", False)
    _check(options, concurrency, pool, tasks, memory_bytes)
    return RunConfig(
        scenario=scenario.name,
        memory=memory,
        memory_bytes=memory_bytes,
        concurrency=concurrency,
        pool=pool,
        tasks=tasks,
        variant=variant.name,
        params=scenario.resolve_params(options.params),
        broker=options.broker,
        result_backend=options.result_backend,
        oom_scope=options.oom_scope,
        results_dir=options.results_dir,
        timeout=options.timeout,
        start_timeout=options.start_timeout,
        sample_hz=options.sample_hz,
        tracemalloc=bool(tracemalloc),
        celery_conf={**variant.celery_conf, **celery_overrides(options)},
        queue_arguments=dict(options.queue_arguments),
        restart=options.restart,
        restart_delay=options.restart_delay,
        settle=options.settle,
        max_oom_redeliveries=options.max_oom_redeliveries,
        placement=options.placement,
        docker_restart=options.docker_restart,
        container_starter=options.container_starter,
        profile=profile_names(options.profile, scenario.app, pool, concurrency, options.placement),
        profile_native=_native(options),
        load=dict(options.load),
    )


def _native(options: RunOptions) -> bool:
    if options.profile_native and not options.profile:
        raise BadInput("--profile-native adds native frames to --profile: choose the tasks with --profile NAME|all")
    return options.profile_native


def celery_overrides(options: RunOptions) -> dict[str, Any]:
    """The user's Celery settings, with --max-memory-per-child in Celery's unit (KiB)."""
    conf = validate.celery_settings(options.celery)
    if options.max_memory_per_child:
        conf["worker_max_memory_per_child"] = max(1, parse_size(options.max_memory_per_child) // 1024)
    return conf


def _check(options: RunOptions, concurrency: int, pool: str, tasks: int | None, memory_bytes: int) -> None:
    bounds.count("--concurrency", concurrency, bounds.MAX_CONCURRENCY)
    if pool not in POOLS:
        raise BadInput(f"--pool must be one of {', '.join(POOLS)}, not {pool!r}")
    if tasks is not None:
        bounds.count("--tasks", tasks, bounds.MAX_TASKS)
    for name, value in (
        ("--sample-hz", options.sample_hz),
        ("--start-timeout", options.start_timeout),
        ("--timeout", options.timeout),
    ):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise BadInput(f"{name} must be a positive number of seconds, not {value}")
        if value is not None and name != "--sample-hz":
            bounds.span(name, value)
    if options.sample_hz > bounds.MAX_SAMPLE_HZ:
        raise BadInput(f"--sample-hz must be at most {bounds.MAX_SAMPLE_HZ:g}, not {options.sample_hz:g}")
    if isinstance(options.max_oom_redeliveries, bool) or not isinstance(options.max_oom_redeliveries, int):
        raise BadInput(f"--max-oom-redeliveries must be a whole number, not {options.max_oom_redeliveries!r}")
    if options.max_oom_redeliveries < 0:
        raise BadInput(f"--max-oom-redeliveries cannot be negative, not {options.max_oom_redeliveries}")
    if options.placement not in PLACEMENTS:
        raise BadInput(f"the placement must be one of {', '.join(PLACEMENTS)}, not {options.placement!r}")
    if options.placement == "docker":
        if memory_bytes < DOCKER_MIN_MEMORY:  # whether an engine is reachable: asked when the worker starts
            raise BadInput(f"Docker's smallest memory limit is 6 MiB; --memory {memory_bytes} bytes is below it")
    elif options.docker_restart != "no":
        raise BadInput("--docker-restart applies to --placement docker")


def option_names() -> list[str]:
    return [f.name for f in fields(RunOptions)]
