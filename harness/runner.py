"""One run, end to end: limit → broker → worker → replay → record, and cleanup whatever happens.

Every resource is registered in the run's lease the moment it exists, so SIGINT/SIGTERM (handled
here) and SIGKILL (handled by the next run's sweep) both leave nothing behind.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

from kombu import Queue

from harness import client_app, proc, procfs
from harness.analysis import summarize, summarize_processes
from harness.attached_worker import AttachedWorker
from harness.attribution import KillContext, attribute_kills
from harness.broker import EmbeddedRedis, check_reachable, safe_url
from harness.config import RunConfig
from harness.detectors.celery_events import CeleryEventCapture
from harness.detectors.worker_log import WorkerLog
from harness.docker.container import ContainerSpec, ContainerWorker
from harness.docker.engine import worker_image
from harness.environment import describe
from harness.errors import Interrupted, NoPermission, OomlabError, WorkerStartFailed
from harness.executions import build_executions, child_exit_codes, pool_children, task_names
from harness.findings import findings
from harness.leftovers import Lease, delete_queue, sweep_stale
from harness.limits import open_cgroup_backend
from harness.limits.attached import open_attached_group
from harness.monitor import Monitor
from harness.outcomes import TreeContext, fill_task
from harness.record import ProcessRecord, RunRecord, TaskRecord, write_json_atomic
from harness.replay import Replay
from harness.sampler import Sampler
from harness.scenario import RunContext, Scenario
from harness.startup import failure_message, start_state
from harness.truth import mark_process_peaks, private_temp_dir, truth_summary, worker_lost_cause
from harness.worker_launch import jsonable, worker_argv, worker_celery_conf, worker_env
from harness.worker_share import LOG_FILE, PROBE_FILE, WorkerShare

CHECKPOINT_SECONDS = 1.0
CRASH_LOOP_RESTARTS = 3  # a container restarted this often before it was ever ready is in a crash loop


def new_run_id(scenario: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{scenario}-{secrets.token_hex(3)}"


@contextmanager
def signals_raise_interrupted():
    """SIGINT/SIGTERM become an exception in the main thread, so every `finally` runs."""

    def handler(signum, _frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dataclass
class RunResult:
    run_dir: str
    record: RunRecord


class RunObserver:
    """Something that watches a run from outside the worker (the delivery lab's broker view).
    Each hook runs in the run's thread; `collect` may add to the record at every checkpoint."""

    def started(self, run: Run) -> None: ...

    def worker_stopped(self, run: Run) -> None:
        """Every worker process is gone and the broker still runs: the moment to inspect it."""

    def stop(self) -> None: ...

    def collect(self, run: Run) -> None: ...


class Run:
    def __init__(
        self,
        scenario: Scenario,
        config: RunConfig,
        progress=None,
        observers: tuple[RunObserver, ...] = (),
        share: WorkerShare | None = None,
    ):
        self.scenario = scenario
        self.config = config
        self.progress = progress
        self.observers = observers
        self.share = share  # attached: the worker is someone else's, and this says where it is
        self.run_id = new_run_id(scenario.name)
        self.run_dir = os.path.abspath(os.path.join(config.results_dir, self.run_id))
        self.queue = share.queue if share else f"oomlab.{self.run_id}"
        self.hostname = share.hostname if share else f"oomlab-{self.run_id}@{socket.gethostname()}"
        self.wall_offset = time.time() - time.monotonic()
        self.backend = self.broker = self.worker = self.monitor = self.sampler = self.events = self.app = None
        self.replay: Replay | None = None
        # tasks sent by someone else (a pytest session through the app): what the probe saw, and
        # the states the session polled from the result backend
        self.observed_tasks: dict[str, TaskRecord] = {}
        self.external_states: dict[str, tuple[str | None, str | None]] = {}
        self.workers: list = []  # every worker main process started, the current one last
        self.broker_url = self.backend_url = None
        self.task_queue = None
        self.worker_log = WorkerLog(os.path.join(config.attach if share else self.run_dir, "worker.log"))
        self.planned = False
        self.main_peak: int | None = None
        self.worker_tmp: str | None = None  # the worker's TMPDIR (billiard's pymp-* dirs), removed at the end
        self.ready_mono: float | None = None
        self.group_peak: int | None = None
        self.unfinished_status: str | None = None  # worker_lost | timed_out: the replay stopped short
        self.record = RunRecord(
            run_id=self.run_id,
            config=config.as_dict(),
            environment={},
            started_wall=time.time(),
            started_mono=time.monotonic(),
        )

    # --- the whole run ---------------------------------------------------------------------
    def execute(self) -> RunResult:
        self.prepare()
        try:
            with signals_raise_interrupted():
                self.start_worker()
                self._replay()
                self.record.status = self.unfinished_status or "complete"
        except Interrupted as stop:
            self.record.status = "interrupted"
            self.record.message = f"interrupted by {signal.Signals(stop.signum).name}"
            raise
        except WorkerStartFailed as failure:
            self.record.status = "worker_start_failed"
            self.record.message = failure.message
            raise
        except OomlabError as error:
            self.record.status, self.record.message = "error", error.message
            raise
        except BaseException as error:
            self.record.status, self.record.message = "error", f"{type(error).__name__}: {error}"
            raise
        finally:
            self.close()
        return RunResult(self.run_dir, self.record)

    def prepare(self) -> None:
        """The run directory, the lease, and the sweep of what earlier runs left behind."""
        # the monitor thread wakes on kernel events; a short GIL switch interval lets it run
        # within ~1 ms of waking instead of up to 5 ms (CPython's default)
        sys.setswitchinterval(0.0005)
        os.makedirs(self.run_dir)
        self.record.files = {
            "probe": "probe.jsonl",
            "samples": "samples.csv",
            "group": "group.csv",
            "worker_log": "worker.log",
            "timeline": "timeline.png",
        }
        self.lease = Lease.for_this_process(self.run_id)
        self.lease.save()
        self.record.environment["cleaned_up_after_previous_runs"] = sweep_stale()
        self.checkpoint()

    def start_worker(self) -> None:
        """The group, the broker and the worker, ready to take tasks (WorkerStartFailed otherwise)."""
        self._start()
        self._wait_until_ready()

    def close(self) -> None:
        """Stop everything and write the final record; safe to call once, whatever happened before."""
        self._shutdown()
        self.finalize()

    def _start(self) -> None:
        config = self.config
        if config.backend_kind == "docker":
            self.image = worker_image()  # the container (and its cgroup) comes with the worker below
        elif self.share is None:
            self._create_group()
        broker_url = config.broker
        # results go to the broker when it is Redis, to an embedded Redis otherwise (AMQP has no backend)
        backend_url = config.backend or (broker_url if broker_url and broker_url.startswith("redis") else None)
        for url in dict.fromkeys(filter(None, (broker_url, backend_url))):
            check_reachable(url)
        if not (broker_url and backend_url) and self.share is None:
            self.broker = EmbeddedRedis(self.run_dir)
            self.broker.start(self.lease)
            broker_url, backend_url = broker_url or self.broker.url, backend_url or self.broker.url
        self.broker_url, self.backend_url = broker_url, backend_url
        if self._owns_queue:
            self.lease.add_queue(broker_url, self.queue)  # swept after a SIGKILL, deleted at the end otherwise
        app = self.scenario.app
        celery_conf = worker_celery_conf(self.scenario, config.celery_conf, broker_url, backend_url, self.queue)
        self.task_queue = Queue(self.queue, queue_arguments=config.queue_arguments or None)
        client_app.point_at(app, {**celery_conf, "task_queues": [self.task_queue]})
        self.app = app
        self.record.worker = {
            "hostname": self.hostname,
            "queue": self.queue,
            "broker": safe_url(broker_url),
            "backend": safe_url(backend_url),
            "celery_conf": jsonable(celery_conf),
        }
        if self.share:
            probe_path = os.path.join(config.attach, PROBE_FILE)
            self._attach_worker()
        else:
            probe_path = os.path.join(self.run_dir, "probe.jsonl")
            open(probe_path, "a").close()
            self._worker_env_vars = worker_env(
                self.scenario,
                celery_conf,
                probe_path,
                self.queue,
                config.params,
                config.variant,
                config.tracemalloc,
                config.queue_arguments,
            )
            if config.backend_kind == "cgroup":  # a leaf memory cgroup per pool child, made by the probe
                self._worker_env_vars.update(self.backend.leaf_env())
            self._worker_env_vars["TMPDIR"] = self.worker_tmp = private_temp_dir(self.lease)
            self.record.worker["tmpdir"] = self.worker_tmp
            self._spawn_worker()
        self.record.environment.update(describe(self.backend.name))
        emulate = config.oom_scope == "group" and self.backend.version == 1
        self.record.group = {
            "path": self.backend.path,
            "limit_bytes": config.memory_bytes,
            "oom_scope": config.oom_scope,
            "backend": config.backend_kind,
            "cgroup_version": self.backend.version,
            "group_kill": (
                "oomlab, on the OOM notification (v1 has no memory.oom.group)"
                if emulate
                else "the kernel (memory.oom.group)"
                if config.oom_scope == "group"
                else None
            ),
            "files": {
                "limit": self.backend.limit_file,
                "usage": self.backend.usage_file,
                "peak": self.backend.peak_file,
                "events": self.backend.events_file,
            },
        }
        if self.share:
            self.record.group.update(
                {
                    "path": f"{self.share.cgroup_dir} (as the worker, pid {self.share.pid}, sees it)",
                    "cgroup_path": self.share.cgroup_path,
                    "peak_since": "the worker's start (an attached run cannot reset it)",
                }
            )
        self.record.worker["pid"] = self.worker.pid
        self.monitor = Monitor(self.backend, probe_path, emulate_group_kill=emulate)
        self.monitor.watch_pid(self.worker.pid)
        self.monitor.start()
        self.sampler = Sampler(self.backend, self.run_dir, rss_hz=config.sample_hz, on_new_pid=self.monitor.watch_pid)
        self.sampler.start()
        self.events = CeleryEventCapture(app, self.hostname, lambda wall: wall - self.wall_offset)
        self.events.start()
        self.record.environment["detectors"] = {**self.monitor.detectors, "celery_events": True}
        self.record.group["oom_notice"] = self.backend.oom_notice
        for observer in self.observers:
            observer.started(self)
        self.record.status = "running"
        self.checkpoint()

    def _create_group(self) -> None:
        self.backend = open_cgroup_backend(self.run_id)
        try:
            self.backend.create(self.config.memory_bytes, self.config.oom_scope)
            self.backend.prepare_leaves()
        except PermissionError as exc:
            raise NoPermission(
                f"cannot create a memory cgroup at {self.backend.path}: {exc.strerror}; "
                f"run as root or set OOMLAB_CGROUP_PARENT to a writable cgroup"
            ) from None
        except OSError as exc:
            raise NoPermission(f"cannot set up the memory cgroup {self.backend.path}: {exc}") from None
        finally:
            if os.path.isdir(self.backend.path):
                self.lease.set_cgroup(self.backend.path)

    def _spawn_worker(self) -> None:
        """Start a worker main process inside the group (again, under a restart policy)."""
        log_path = os.path.join(self.run_dir, "worker.log")
        if self.config.backend_kind == "docker":
            name = f"oomlab-{self.run_id}"
            self.lease.add_container(name)
            env = {k: v for k, v in self._worker_env_vars.items() if k.startswith("OOMLAB_") or k.startswith("PYTHON")}
            mounts = [
                self.run_dir,
                os.getcwd(),
                *([os.path.dirname(self.broker.socket_path)] if self.broker else []),
                *([os.path.dirname(self.scenario.module_ref)] if self.scenario.module_ref.endswith(".py") else []),
            ]
            spec = ContainerSpec(
                name,
                self.image,
                ["python3", *self._worker_argv()[1:]],
                env,
                mounts,
                self.config.memory_bytes,
                log_path,
                self.config.docker_restart,
            )
            self.worker = ContainerWorker.run(spec, self.config.container_starter)
            self.backend = self.backend or self.worker.memory_cgroup()
        else:
            self.worker = proc.spawn(
                self._worker_argv(), log_path=log_path, env=self._worker_env_vars, join_cgroup=self.backend.join_file
            )
        self.workers.append(self.worker)
        self.lease.add_process(self.worker.pid)
        if self.monitor is not None:
            self.monitor.watch_pid(self.worker.pid)

    def _attach_worker(self) -> None:
        """Someone else's worker: its group through its own view, watched, never stopped or leased."""
        self.backend = open_attached_group(self.share.pid, self.share.cgroup_dir, self.share.cgroup_path)
        self.worker = AttachedWorker(self.share.pid)
        self.workers.append(self.worker)
        self.record.worker["attached"] = {
            "share": os.path.abspath(self.config.attach),
            "started_wall": self.share.started_wall,
        }

    @property
    def _owns_queue(self) -> bool:
        """The run's own queue on an external broker: leased, and deleted at the end."""
        return self.share is None and (self.broker is None or self.broker_url != self.broker.url)

    def _restart_worker(self, now: float) -> None:
        previous = self.worker
        self._spawn_worker()
        self.record.worker.setdefault("restarts", []).append(
            {
                "pid": self.worker.pid,
                "started_mono": now,
                "previous_pid": previous.pid,
                "previous_exit_code": previous.returncode,
            }
        )

    def _worker_argv(self) -> list[str]:
        return worker_argv(self.config.pool, self.config.concurrency, self.queue, self.hostname)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.config.start_timeout
        expected = self.config.concurrency if self.config.pool == "prefork" else 0
        next_restart_check = 0.0
        while True:
            obs = self.monitor.snapshot()
            state = start_state(
                obs, expected, self.worker.poll() is not None, self.backend.oom_kill_count(), self.config.concurrency
            )
            if state.ready:
                self.ready_mono = time.monotonic()
                self.record.worker["ready_mono"] = self.ready_mono
                return
            looping = False
            if isinstance(self.worker, ContainerWorker) and time.monotonic() >= next_restart_check:
                next_restart_check = time.monotonic() + 0.5  # `docker inspect` twice a second, not every loop
                looping = self.worker.restart_count() >= CRASH_LOOP_RESTARTS
            if state.failed or looping or time.monotonic() > deadline:
                time.sleep(0.2)  # let the kernel log and the exits of the last kill arrive
                self._collect()
                if loop := self._crash_loop():
                    raise WorkerStartFailed(loop)
                message = failure_message(
                    state.reason or "timeout",
                    self.record.kills,
                    self.sampler.snapshot(),
                    self.worker.pid,
                    self.config.memory_bytes,
                    self.config.concurrency,
                    self.worker.poll(),
                    self.config.start_timeout,
                )
                raise WorkerStartFailed(message)
            if self.progress:
                self.progress.starting(self)
            time.sleep(0.05)

    def wait_until_ready_again(self, pid: int, timeout: float | None = None) -> None:
        """A restarted worker (pid) is ready: its worker_ready and, for prefork, its children's init."""
        deadline = time.monotonic() + (timeout or self.config.start_timeout)
        expected = self.config.concurrency if self.config.pool == "prefork" else 0
        while time.monotonic() < deadline and self.worker.poll() is None:
            probe = self.monitor.snapshot().probe
            ready = any(r["ev"] == "worker_ready" and r["pid"] == pid for r in probe)
            children = {r["pid"] for r in probe if r["ev"] == "child_init" and r.get("ppid") == pid}
            if ready and len(children) >= expected:
                return
            time.sleep(0.05)
        raise WorkerStartFailed(f"the restarted worker (pid {pid}) did not become ready; see worker.log")

    def _context(self) -> RunContext:
        return RunContext(
            limit_bytes=self.config.memory_bytes,
            concurrency=self.config.concurrency,
            pool=self.config.pool,
            variant=self.config.variant,
            tasks=self.config.tasks,
            params=self.config.params,
            run_dir=self.run_dir,
            inputs_dir=os.path.join(os.path.abspath(self.config.results_dir), ".inputs"),
        )

    def _replay(self) -> None:
        self.planned = True
        plan = self.scenario.plan(self._context())
        timeout = self.config.timeout or plan.timeout
        self.record.config["timeout_used"] = timeout
        self.replay = Replay(self.app, plan, self.task_queue)
        started = time.monotonic()
        last_checkpoint = 0.0
        worker_gone_at = final_since = None
        while True:
            now = time.monotonic()
            self.replay.send_due(now - started)
            self.replay.poll_states(include_final=final_since is not None)
            if self.progress:
                self.progress.running(self)
            if self.replay.all_sent and self.replay.unfinished() == 0:
                final_since = final_since or now
                if now - final_since >= self.config.settle:
                    break
            else:
                final_since = None
            if self.worker.poll() is not None:
                worker_gone_at = worker_gone_at or now
                if self.config.restart == "always":
                    if now - worker_gone_at >= self.config.restart_delay:
                        self._restart_worker(now)
                        worker_gone_at = None
                elif now - worker_gone_at > 1.0:  # nobody is left to finish the rest
                    code = "" if self.worker.returncode is None else f" (code {self.worker.returncode})"
                    self.record.message = (
                        f"the worker's main process exited{code} with {self.replay.unfinished()} tasks unfinished"
                    )
                    self.unfinished_status = "worker_lost"
                    self.record.worker["lost_cause"] = worker_lost_cause(self.worker_log.path)
                    break
            if now - started > timeout:
                self.record.message = (
                    f"timed out after {timeout:.0f} s with {self.replay.unfinished()} tasks unfinished"
                )
                self.unfinished_status = "timed_out"
                break
            if now - last_checkpoint >= CHECKPOINT_SECONDS:
                self.checkpoint()
                last_checkpoint = now
            time.sleep(0.1)
        time.sleep(0.3)  # the last events and kernel lines of the final kill
        self.replay.poll_states(include_final=True)
        self.record.worker["observed_until_mono"] = time.monotonic()  # what follows is oomlab stopping it

    # --- teardown ----------------------------------------------------------------------------
    def _shutdown(self) -> None:
        """Stop everything this run started; each step runs even when an earlier one failed."""
        steps = [self._read_main_peak]
        quick = self._nothing_left_to_see()
        self.record.worker["stopped_with"] = "SIGKILL" if quick else "SIGTERM"
        for worker in self.workers:
            if isinstance(worker, AttachedWorker):
                steps.append(worker.close)  # someone else's: left running
            elif quick:
                steps.append(lambda worker=worker: proc.stop(worker, grace=0.0, on_timeout=self.backend.kill_all))
            else:
                steps.append(lambda worker=worker: proc.stop(worker, grace=3.0, on_timeout=self.backend.kill_all))
        if self.backend is not None:
            steps.append(self._read_group_peak)
            steps.append(self.backend.kill_all)
        for worker in self.workers:
            if isinstance(worker, ContainerWorker):
                steps.append(lambda worker=worker: self._close_container(worker))
        steps.extend(lambda observer=observer: observer.worker_stopped(self) for observer in self.observers)
        if self.share is not None and self.replay is not None:
            steps.append(self._revoke_unfinished)
        if self.app is not None and self.broker_url and self._owns_queue:
            steps.append(lambda: delete_queue(self.broker_url, self.queue))  # a durable queue outlives us otherwise
        for thread in (self.events, self.sampler, self.monitor):
            if thread is not None:
                steps.append(thread.stop)
        steps.extend(observer.stop for observer in self.observers)
        if self.planned:
            steps.append(lambda: self.scenario.teardown(self._context()))
        if self.app is not None:
            steps.append(lambda: client_app.detach(self.app))
        if self.broker is not None:
            steps.append(self.broker.stop)
        if self.backend is not None and self.config.backend_kind != "docker":  # docker removes its own
            steps.append(self.backend.remove)
        if self.worker_tmp:
            steps.append(lambda: shutil.rmtree(self.worker_tmp, ignore_errors=True))
        for step in steps:
            try:
                step()
            except Exception as exc:  # keep cleaning up; say what failed in the record
                self.record.environment.setdefault("cleanup_errors", []).append(f"{type(exc).__name__}: {exc}")
        if self.workers:
            self.record.worker["exit_code"] = self.workers[0].returncode
            for restart, worker in zip(self.record.worker.get("restarts", []), self.workers[1:], strict=False):
                restart["exit_code"] = worker.returncode
        self.lease.release()

    def _nothing_left_to_see(self) -> bool:
        """Every task final, every observation in, and nobody (the delivery lab) watching what the
        broker keeps after the worker stops: the worker's own group is then killed outright. Celery's
        warm shutdown would take 2 s more (its pool's threads wind down on timeouts) and add nothing."""
        return (
            self.config.backend_kind == "cgroup"
            and self.share is None
            and not self.observers
            and self.replay is not None
            and self.replay.all_sent
            and self.replay.unfinished() == 0
            and self.record.status == "complete"
        )

    def _revoke_unfinished(self) -> None:
        """An attached worker outlives the run: what it has not finished of ours is revoked, not left
        for it to run into the next run."""
        if unfinished := self.replay.unfinished_ids():
            self.app.control.revoke(unfinished)
            self.record.worker["revoked"] = unfinished

    def _read_main_peak(self) -> None:
        """The first main process's VmHWM (never reset, so its lifetime peak), while it is alive to ask."""
        first = self.workers[0] if self.workers else None
        if first is not None and first.poll() is None:
            peak = procfs.status_fields(first.pid, ("VmHWM",)).get("VmHWM")
            if peak:
                self.main_peak = max(self.main_peak or 0, peak)

    def _crash_loop(self) -> str | None:
        """A container under a restart policy that keeps being OOM-killed at start-up: how many
        restarts, and how often the kernel killed it (from the kernel's own kill times)."""
        if not isinstance(self.worker, ContainerWorker):
            return None
        restarts = self.worker.restart_count()
        if not restarts:
            return None
        times = sorted(k.kernel_time_mono for k in self.record.kills)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        period = f", one kill every {sum(gaps) / len(gaps):.1f} s" if gaps else ""
        self.record.worker["crash_loop"] = {"restarts": restarts, "kills": len(times), "kill_intervals_s": gaps}
        return (
            f"crash loop: the container was restarted {restarts} times by its restart policy "
            f"({self.config.docker_restart}) and OOM-killed {len(times)} times during start-up under the "
            f"{self.config.memory} limit{period}; raise --memory or load less at start-up"
        )

    def _close_container(self, worker: ContainerWorker) -> None:
        """Docker's own verdict on the container (OOMKilled, exit code, restarts), then remove it."""
        found = worker.inspect()
        state = found.get("State") or {}
        self.record.worker["container"] = {
            "name": worker.name,
            "oom_killed": state.get("OOMKilled"),
            "exit_code": state.get("ExitCode"),
            "restart_count": int(found.get("RestartCount") or 0),
            "image": self.image,
            "started_by": self.config.container_starter,
            "labels": (found.get("Config") or {}).get("Labels") or {},
        }
        worker.remove()

    def _read_group_peak(self) -> None:
        self.group_peak = self.backend.peak_bytes()
        self.record.group["oom_kill_count"] = self.backend.oom_kill_count()

    # --- the record ------------------------------------------------------------------------
    def _collect(self) -> None:
        """Rebuild the record's tasks, processes and kills from everything observed so far."""
        if self.monitor is None:
            return
        obs = self.monitor.snapshot()
        self.record.environment["kmsg_clock"] = self.monitor.kmsg_clock
        if obs.group_replaced:  # a restarted container's cgroup, made anew under the same path
            self.record.group["replaced_mono"] = obs.group_replaced
        stats = self.sampler.snapshot() if self.sampler else {}
        events = self.events.snapshot() if self.events else []
        executions = build_executions(obs.probe)
        names = task_names(obs.probe)
        exit_codes = child_exit_codes(obs.probe)
        main_pid = self.workers[0].pid if self.workers else None
        main_pids = frozenset(worker.pid for worker in self.workers)
        self._read_main_peak()
        ready = next((r.get("rss") for r in obs.probe if r["ev"] == "worker_ready" and r["pid"] == main_pid), None)
        self.record.worker["ready_rss_bytes"] = ready
        noticed = {pid: wall - self.wall_offset for pid, wall in self.worker_log.read().child_deaths.items()}
        children = pool_children(obs.probe)
        kills = attribute_kills(
            obs, KillContext(main_pids, self.ready_mono, executions, names, stats, events, noticed, children)
        )
        # VmHWM when the main process was last alive to ask; if it died first, the kernel's figure at
        # its kill or the sampled maximum can be higher, and each is a true lower bound
        sampled = stats[main_pid].max_rss if main_pid in stats else 0
        main_peak = max([self.main_peak or 0, sampled] + [k.rss_bytes or 0 for k in kills if k.pid == main_pid]) or None
        self.record.kills = kills
        self.record.celery_events = events
        main_exit_codes = {worker.pid: worker.returncode for worker in self.workers}
        self.record.processes = [
            ProcessRecord(
                pid=pid,
                role="main" if pid in main_pids else "child",
                first_seen_mono=s.first_seen,
                last_seen_mono=s.last_seen,
                command=s.command,
                exited_mono=obs.exits.get(pid),
                exit_code=main_exit_codes[pid] if pid in main_pids else exit_codes.get(pid),
                peak_rss_bytes=main_peak if pid == main_pid else None,
                max_rss_bytes=s.max_rss,
                max_pss_bytes=s.max_pss,
                max_uss_bytes=s.max_uss,
                last_rss_bytes=s.last_rss,
            )
            for pid, s in sorted(stats.items(), key=lambda item: item[1].first_seen)
        ]
        if self.replay is not None:
            tasks, states = self.replay.tasks, self.replay.states
        else:
            tasks, states = self._observed(executions, names), self.external_states
        tree = TreeContext(self.config.pool, stats, obs.leaf_of_pid, children)
        mark_process_peaks(self.record.processes, obs.probe, executions, obs.leaf_of_pid)
        for task in tasks:
            state, exception = states.get(task.id, (None, None))
            fill_task(task, state, exception, executions.get(task.id, []), kills, tree)
        self.record.tasks = tasks
        peak = self.group_peak if self.group_peak is not None else (self.sampler.max_usage if self.sampler else None)
        self.record.summary = summarize(self.record.tasks, kills, self.config.memory_bytes, peak)
        self.record.summary.update(summarize_processes(self.record.processes))
        if self.sampler:
            self.record.summary["sampler"] = self.sampler.cost.as_dict()
            self.record.summary["sum_rss_peak_bytes"] = self.sampler.max_sum_rss or None
            self.record.summary["group_usage_at_sum_rss_peak_bytes"] = self.sampler.usage_at_max_sum_rss
        self.record.summary.update(truth_summary(self.record, self.backend, self.sampler))
        self.record.summary["findings"] = findings(self.record)
        if self.events and self.events.error:
            self.record.environment["celery_events_error"] = self.events.error
        for observer in self.observers:
            observer.collect(self)

    def _observed(self, executions: dict, names: dict[str, str]) -> list[TaskRecord]:
        for task_id, runs in executions.items():
            if task_id not in self.observed_tasks and runs:
                self.observed_tasks[task_id] = TaskRecord(
                    id=task_id, name=names.get(task_id, "?"), label="", args=[], sent_mono=runs[0].started_mono
                )
        return list(self.observed_tasks.values())

    def _copy_shared_files(self) -> None:
        """An attached worker's probe record and log live in its share (a Compose volume, out of the
        user's sight): the run directory gets a copy, the worker's whole life so far."""
        for name in (PROBE_FILE, LOG_FILE):
            try:
                shutil.copyfile(os.path.join(self.config.attach, name), os.path.join(self.run_dir, name))
            except OSError as exc:
                self.record.environment.setdefault("cleanup_errors", []).append(f"copying {name}: {exc}")

    def checkpoint(self) -> None:
        self._collect()
        self.record.ended_mono = time.monotonic()
        write_json_atomic(os.path.join(self.run_dir, "run.json"), self.record.to_json())

    def finalize(self) -> None:
        if self.share:
            self._copy_shared_files()
        self.checkpoint()
        samples = os.path.join(self.run_dir, "samples.csv")
        if not os.path.exists(samples) or os.path.getsize(samples) == 0:
            return  # nothing was sampled (the run stopped before its worker started): no plot, no matplotlib
        try:
            from harness.report.timeline import render_timeline

            render_timeline(self.run_dir, self.record)
        except Exception as exc:  # a plot must never cost the user the record
            self.record.environment["timeline_error"] = f"{type(exc).__name__}: {exc}"
            write_json_atomic(os.path.join(self.run_dir, "run.json"), self.record.to_json())
