"""The hand-over for a fleet, one worker class or several (split queues): a celeryconfig with the
task routes and each class's worker settings, the worker command per class, a compose file with one
service per class (its mem_limit) and a Kubernetes Deployment per class (replicas, the memory
request and limit, the pool and concurrency in the command), with a note on what a cgroup v2 host
does when that limit is hit (memory.oom.group). In both, `oomlab agent` is the worker's entrypoint:
it runs the worker command unchanged, repairs what a kill leaves, and serves Prometheus metrics on
AGENT_PORT (the Deployment's pods carry the scrape annotations); a fleet run's event stream is the
OOMLAB_EVENTS environment variable (empty: none). Every file is text built from the plan's figures
alone; strings are written JSON-quoted, which YAML reads as they are."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from oomlab.workflows.recommend.fleet import FleetRow
from oomlab.workflows.recommend.profile import WorkerProfile
from oomlab.workflows.recommend.recycling import setting_recycling
from oomlab.workflows.recommend.split import SplitPlan, WorkerClass
from oomlab.workflows.recommend.split_proof import ClassProof
from oomlab.workflows.recommend.throughput import cores_usable

MIB = 1024 * 1024
ONE_CLASS, SPLIT = "one_class", "split"  # the hand-overs, as the record's `handover` names them
LABELS = {ONE_CLASS: "one worker class", SPLIT: "split queues"}
IMAGE = "proj-worker:latest"  # the user's worker image; the hand-over says to replace it
CLASS_ENV = "WORKER_CLASS"  # which class's settings the celeryconfig applies in a container
AGENT_PORT = 9808  # the agent's Prometheus /metrics in every replica (docker-compose.fleet.yml's too)
EVENTS_ENV = "OOMLAB_EVENTS"  # a fleet run's event stream for `oomlab agent --events` (empty or unset: none)
# The agent as PID 1 (exec), with `--events-from-env OOMLAB_EVENTS` only when the variable is set and
# not empty, so one manifest serves a plain deployment and a fleet run alike; the URL (a password in it)
# is read from the environment, never put on the agent's command line, where any local user could read
# it in ps. The worker command is its arguments ("$@"), unchanged. A POSIX shell is all it needs.
AGENT_ENTRYPOINT = [
    "sh",
    "-c",
    f'exec oomlab agent --metrics 0.0.0.0:{AGENT_PORT} ${{{EVENTS_ENV}:+--events-from-env {EVENTS_ENV}}} -- "$@"',
    "oomlab-agent",
]
# SIGTERM reaches Celery through the agent: a warm shutdown, which finishes the tasks in hand before the
# worker exits. The grace is how long those may take before the kubelet (or Compose) sends SIGKILL.
GRACE_S = 60
FLAGS = {"worker_max_memory_per_child": "--max-memory-per-child", "worker_max_tasks_per_child": "--max-tasks-per-child"}

OOM_GROUP_NOTE = """\
# On cgroup v2 hosts Kubernetes 1.28+ sets memory.oom.group=1 on the container's cgroup: when the
# limit is hit, the kernel kills every process in the container at once (the main worker and all its
# pool children), not only the largest child as cgroup v1 or a bare `oomlab run` does. One task over
# the limit then restarts the whole replica and loses every task it held; acks_late with
# reject_on_worker_lost redelivers them. The kubelet flag --singleProcessOOMKill=true (1.32+) restores
# the per-process kill. The plan above keeps the limit's margin so that no trial hit it."""


@dataclass(frozen=True)
class ClassSetting:
    """One worker class as it is deployed: `kinds` are the task names routed to its queue (empty:
    every task, on the default queue)."""

    name: str
    queue: str
    replicas: int
    limit_bytes: int
    pool: str
    concurrency: int
    recycling: dict[str, int] = field(default_factory=dict)
    kinds: tuple[str, ...] = ()
    cpus: int = 0  # the cores its throughput was measured with (0: not measured, no CPU setting written)
    app: str = ""  # what `celery -A` takes for the user's app (Scenario.app_target)


def row_setting(
    row: FleetRow, profile: WorkerProfile, margin: float, queues: list[str] | tuple[str, ...] = ("celery",)
) -> ClassSetting:
    """The fleet row as deployed, with the recycling its proof ran with (the same rule, at its
    concurrency), consuming every queue the user's app sends to (`queues`, its default first)."""
    c = row.candidate
    recycling = setting_recycling(profile, c.limit_bytes, margin, c.pool, c.concurrency)
    return ClassSetting(
        "worker", ",".join(queues), row.replicas, c.limit_bytes, c.pool, c.concurrency, recycling, cpus=c.cores_usable
    )


def class_setting(worker_class: WorkerClass, proof: ClassProof | None = None) -> ClassSetting:
    """`proof`: the class's own run, whose machine cores its pool could use (none without one)."""
    c = worker_class
    cpu = proof.run.cpu if proof else None
    cpus = cores_usable(c.pool, c.concurrency, cpu.cores) if cpu else 0
    return ClassSetting(
        c.queue, c.queue, c.replicas, c.limit_bytes, c.pool, c.concurrency, c.recycling, tuple(c.kinds), cpus
    )


def split_settings(split: SplitPlan, proofs: list[ClassProof] | None = None) -> list[ClassSetting]:
    by_queue = {p.queue: p for p in proofs or []}
    return [class_setting(c, by_queue.get(c.queue)) for c in split.two_classes]


def with_app(settings: list[ClassSetting], app: str) -> list[ClassSetting]:
    """The settings as the user's app runs them (`celery -A myapp.celery:app`)."""
    return [replace(s, app=app) for s in settings]


def worker_command(setting: ClassSetting) -> list[str]:
    command = [
        "celery",
        "-A",
        setting.app or "APP",
        "worker",
        f"--pool={setting.pool}",
        f"--concurrency={setting.concurrency}",
    ]
    command += [f"--queues={setting.queue}", f"--hostname={setting.name}@%h"]
    return command + [f"{FLAGS[key]}={value}" for key, value in sorted(setting.recycling.items())]


def _mib(limit_bytes: int) -> int:
    return limit_bytes // MIB


def _q(text: str) -> str:
    return json.dumps(text)


def _one_line(text: str) -> str:
    """Text for a comment: a line break in a name must not end the comment and start code."""
    return " ".join(text.split())


def _dns_name(text: str) -> str:
    """A Kubernetes object name: lower-case letters, digits and '-'."""
    cleaned = "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")
    return "-".join(part for part in cleaned.split("-") if part)[:63] or "worker"


def celeryconfig(scenario: str, settings: list[ClassSetting], what: str) -> str:
    """A celeryconfig.py: task_routes for every routed kind, and each class's worker settings picked
    by the WORKER_CLASS environment variable (the compose services and the Deployments set it)."""
    lines = [_one_line(f"# celeryconfig.py for {scenario}: {what} (written by oomlab recommend)")]
    for s in settings:
        routed = f" ({', '.join(s.kinds)})" if s.kinds else ""
        lines += [
            _one_line(
                f"# worker class {s.name}{routed}: {s.replicas} replica(s) with a {_mib(s.limit_bytes)} MiB limit each, run as"
            ),
            "#   " + _one_line(" ".join(worker_command(s))),
        ]
    lines += ["import os", ""]
    routes = {kind: s.queue for s in settings for kind in s.kinds}
    if routes:
        lines.append("task_routes = {")
        lines += [f"    {_q(kind)}: {{{_q('queue')}: {_q(queue)}}}," for kind, queue in sorted(routes.items())]
        lines.append("}")
    else:
        lines.append(f"task_default_queue = {_q(settings[0].queue.split(',')[0])}")
    lines += ["", "# per worker class: the same settings its command line gives", "WORKER_CLASSES = {"]
    for s in settings:
        values = {"worker_pool": s.pool, "worker_concurrency": s.concurrency, **dict(sorted(s.recycling.items()))}
        lines.append(f"    {_q(s.name)}: {json.dumps(values)},")
    default = settings[0].name
    lines += [
        "}",
        f"_CLASS = WORKER_CLASSES[os.environ.get({_q(CLASS_ENV)}, {_q(default)})]",
        "worker_pool = _CLASS[" + _q("worker_pool") + "]",
        "worker_concurrency = _CLASS[" + _q("worker_concurrency") + "]",
        *(f"{key} = _CLASS.get({_q(key)})" for key in sorted(FLAGS)),
    ]
    return "\n".join(lines) + "\n"


def compose_yaml(scenario: str, settings: list[ClassSetting]) -> str:
    """One service per class; `docker compose up` starts each class's replicas with its own mem_limit,
    each under the agent (its metrics on AGENT_PORT inside the project's network)."""
    lines = [
        _one_line(f"# docker compose services for {scenario}: one per worker class; {IMAGE} and the broker are yours"),
        f"# `oomlab agent` wraps each worker: {EVENTS_ENV}=STREAM in the environment of `docker compose up` sends",
        "# its events to a fleet run; its Prometheus metrics are on port " + f"{AGENT_PORT} of every replica",
        "services:",
    ]
    for s in settings:
        mib = _mib(s.limit_bytes)
        lines += [
            f"  {_dns_name(s.name)}:",
            f"    image: {_q(IMAGE)}",
            f"    entrypoint: {_compose_text(json.dumps(AGENT_ENTRYPOINT))}",
            f"    command: {_compose_text(json.dumps(worker_command(s)))}",
            "    environment:",
            f"      {CLASS_ENV}: {_q(s.name)}",
            f"      {EVENTS_ENV}: {_q('${' + EVENTS_ENV + ':-}')}",
            f"    expose: [{_q(str(AGENT_PORT))}]",
            f"    stop_grace_period: {_q(f'{GRACE_S}s')}  # {_grace_note()}",
            f"    mem_limit: {_q(f'{mib}m')}",
            f"    memswap_limit: {_q(f'{mib}m')}  # no swap: the limit is the one the plan was proven under",
            *([f"    cpus: {s.cpus}  # {_cores_note(s.cpus)}"] if s.cpus else []),
            "    deploy:",
            f"      replicas: {s.replicas}",
        ]
    return "\n".join(lines) + "\n"


def _compose_text(text: str) -> str:
    """Compose reads `$` as its own interpolation: `$$` is a `$` the container sees."""
    return text.replace("$", "$$")


def _grace_note() -> str:
    return "SIGTERM is Celery's warm shutdown (through the agent): the tasks in hand may finish"


def deployment_yaml(scenario: str, setting: ClassSetting) -> str:
    """Requests equal limits (Guaranteed QoS): the scheduler places what the plan measured, memory and
    the cores its throughput was measured with. The agent is the entrypoint and the worker command its
    arguments; Prometheus finds the agent's metrics through the pod's annotations. Readiness is the
    agent's metrics port accepting a connection (a TCP check costs the pod nothing); there is no
    liveness probe: `celery inspect ping` in an exec probe would run a Python inside the same memory
    limit, and the container already ends when the worker does (the agent exits with its code)."""
    name = _dns_name(f"{scenario}-{setting.name}")
    mib = _mib(setting.limit_bytes)
    command = "\n".join(f"            - {_q(part)}" for part in AGENT_ENTRYPOINT)
    args = "\n".join(f"            - {_q(part)}" for part in worker_command(setting))
    cpu = f'\n              cpu: "{setting.cpus}"' if setting.cpus else ""
    cpu_note = f"  # {_cores_note(setting.cpus)}" if setting.cpus else ""
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  replicas: {setting.replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "{AGENT_PORT}"
        prometheus.io/path: "/metrics"
    spec:
      terminationGracePeriodSeconds: {GRACE_S}  # {_grace_note()}
      containers:
        - name: worker
          image: {_q(IMAGE)}
          command:  # oomlab agent, then the worker command (args) unchanged
{command}
          args:
{args}
          env:
            - name: {CLASS_ENV}
              value: {_q(setting.name)}
            - name: {EVENTS_ENV}  # a fleet run's event stream (oomlab agent --events); empty: none
              value: ""
          ports:
            - name: metrics
              containerPort: {AGENT_PORT}
          readinessProbe:
            tcpSocket:
              port: metrics
            periodSeconds: 10
          resources:{cpu_note}
            requests:
              memory: {mib}Mi{cpu}
            limits:
              memory: {mib}Mi{cpu}
"""


def _cores_note(cpus: int) -> str:
    return f"throughput was measured with {cpus} core(s) for this worker: fewer carry less"


def kubernetes_yaml(scenario: str, settings: list[ClassSetting]) -> str:
    return "---\n".join(deployment_yaml(scenario, s) for s in settings) + OOM_GROUP_NOTE + "\n"


def handover_files(scenario: str, settings: list[ClassSetting], what: str, warning: str = "") -> dict[str, str]:
    """File suffix -> text, written beside the recommend JSON; `warning` (a plan not proven) is each
    file's first line, a comment in Python and YAML alike."""
    files = {
        "celeryconfig.py": celeryconfig(scenario, settings, what),
        "compose.yaml": compose_yaml(scenario, settings),
        "k8s.yaml": kubernetes_yaml(scenario, settings),
    }
    first = f"# {_one_line(warning)}\n" if warning else ""
    return {suffix: first + text for suffix, text in files.items()}
