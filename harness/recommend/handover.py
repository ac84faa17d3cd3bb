"""The hand-over for a fleet: a Kubernetes Deployment with the replicas, the memory request and
limit, and the pool and concurrency in the worker's command, and what a cgroup v2 host does when
that limit is hit (memory.oom.group), written beside the recommend JSON."""

from __future__ import annotations

MIB = 1024 * 1024

OOM_GROUP_NOTE = """\
# On cgroup v2 hosts Kubernetes 1.28+ sets memory.oom.group=1 on the container's cgroup: when the
# limit is hit, the kernel kills every process in the container at once (the main worker and all its
# pool children), not only the largest child as cgroup v1 or a bare `oomlab run` does. One task over
# the limit then restarts the whole replica and loses every task it held; acks_late with
# reject_on_worker_lost redelivers them. The kubelet flag --singleProcessOOMKill=true (1.32+) restores
# the per-process kill. The plan above keeps the limit's margin so that no trial hit it."""


def deployment_yaml(
    name: str,
    replicas: int,
    limit_bytes: int,
    pool: str,
    concurrency: int,
    queue: str = "celery",
    extra_flags: tuple[str, ...] = (),
) -> str:
    """Requests equal limits (Guaranteed QoS): the scheduler places what the plan measured."""
    mib = limit_bytes // MIB
    command = ["celery", "-A", "proj", "worker", f"--pool={pool}", f"--concurrency={concurrency}", f"-Q={queue}"]
    command += list(extra_flags)
    args = "\n".join(f"            - {part!r}".replace("'", '"') for part in command)
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
        - name: worker
          image: proj-worker:latest
          command:
{args}
          resources:
            requests:
              memory: {mib}Mi
            limits:
              memory: {mib}Mi
"""


def handover(deployments: list[str]) -> str:
    return "\n---\n".join(deployments) + "\n" + OOM_GROUP_NOTE + "\n"
