"""The worker in a Docker container with the limit, watched from the host through the container's
own memory cgroup (host pid namespace, so the probe's pids are the kernel log's)."""

from __future__ import annotations

import itertools
import time
from functools import partial
from typing import Any

from oomlab.config.durations import format_seconds
from oomlab.record.schema import ContainerState, CrashLoop, KillRecord, WorkerSection
from oomlab.trust import import_env
from oomlab.worker import proc
from oomlab.worker.docker.container import ContainerWorker
from oomlab.worker.docker.engine import check_engine, worker_image
from oomlab.worker.docker.spec import ContainerSpec
from oomlab.worker.placement.base import Placement, Step, WorkerLaunch, WorkerProcess

CRASH_LOOP_RESTARTS = 3  # a container restarted this often before it was ever ready is in a crash loop
RESTART_CHECK_SECONDS = 0.5  # ask Docker about restarts twice a second, not every loop


class DockerContainer(Placement):
    kind = "docker"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        check_engine()  # no engine: one sentence (exit 8) when the run is made, before anything exists
        self.image: str | None = None
        self.states: list[ContainerState] = []  # Docker's verdict on each container, read before removal
        self._next_check = 0.0

    def prepare(self) -> None:
        self.image = worker_image()  # the container, and its cgroup, come with the worker

    def _start(self, launch: WorkerLaunch) -> WorkerProcess:
        name = f"oomlab-{self.run_id}"
        self.lease.add_container(name)
        env = {k: v for k, v in launch.env.items() if k.startswith(("OOMLAB_", "PYTHON"))}
        env.update(import_env())  # python -m celery puts no working directory first either
        assert self.image is not None, "launch before prepare"
        assert launch.cwd is not None, "a container's worker works in a private directory of the run's"
        spec = ContainerSpec(
            name,
            self.image,
            ["python3", *launch.argv[1:]],
            env,
            launch.mounts,
            self.config.memory_bytes,
            self.log_path,
            workdir=launch.cwd,  # never the caller's cwd: Celery's find_app imports from it first, as root
            restart=self.config.docker_restart,
        )
        worker = ContainerWorker.run(spec, self.config.container_starter)
        self.group = self.group or worker.memory_cgroup()
        return worker

    def _containers(self) -> list[ContainerWorker]:
        return [w for w in self.workers if isinstance(w, ContainerWorker)]

    def starting_trouble(self) -> str | None:
        if time.monotonic() < self._next_check:
            return None
        self._next_check = time.monotonic() + RESTART_CHECK_SECONDS
        restarts = self._containers()[-1].restart_count()
        return f"restarted {restarts} times" if restarts >= CRASH_LOOP_RESTARTS else None

    def stop_steps(self, quick: bool) -> list[Step]:
        group = self.group
        kill_all = group.kill_all if group is not None else None
        # never outright: Docker would report the container's 137 as an OOM kill
        return [partial(proc.stop, w, grace=3.0, on_timeout=kill_all) for w in self._containers()]

    def after_stop_steps(self) -> list[Step]:
        return [partial(self._close, w) for w in self._containers()]

    def _close(self, worker: ContainerWorker) -> None:
        """Docker's own verdict on the container (OOMKilled, exit code, restarts), then remove it."""
        found = worker.inspect()
        state = found.get("State") or {}
        self.states.append(
            ContainerState(
                name=worker.name,
                oom_killed=state.get("OOMKilled"),
                exit_code=state.get("ExitCode"),
                restart_count=int(found.get("RestartCount") or 0),
                image=self.image,
                started_by=self.config.container_starter,
                labels=(found.get("Config") or {}).get("Labels") or {},
            )
        )
        worker.remove()

    def describe_worker(self, section: WorkerSection) -> None:
        if self.states:
            section.container = self.states[-1]

    def crash_loop(self, kills: list[KillRecord], section: WorkerSection) -> str | None:
        """A container under a restart policy that keeps being OOM-killed at start-up: how many
        restarts, and how often the kernel killed it (from the kernel's own kill times)."""
        containers = self._containers()
        restarts = containers[-1].restart_count() if containers else 0
        if not restarts:
            return None
        times = sorted(k.kernel_time_mono for k in kills)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        period = f", one kill every {format_seconds(sum(gaps) / len(gaps))}" if gaps else ""
        section.crash_loop = CrashLoop(restarts=restarts, kills=len(times), kill_intervals_s=gaps)
        return (
            f"crash loop: the container was restarted {restarts} times by its restart policy "
            f"({self.config.docker_restart}) and OOM-killed {len(times)} times during start-up under the "
            f"{self.config.memory} limit{period}; raise --memory or load less at start-up"
        )
