"""`oomlab worker SCENARIO --share DIR`: a scenario's Celery worker, with the probe, for an oomlab
elsewhere to attach to (`oomlab run SCENARIO --attach DIR`). It becomes the worker (exec), so a
container's main process is Celery's and its memory limit is the worker's."""

from __future__ import annotations

import argparse
import os
import socket
import time

from oomlab.cli.args import add_worker_settings, run_options
from oomlab.cli.url_flags import add_url_flags
from oomlab.config.options import resolve
from oomlab.config.scenario import load_scenario
from oomlab.errors import BadInput
from oomlab.trust import private_workdir
from oomlab.worker.broker import check_reachable
from oomlab.worker.launch import jsonable, worker_argv, worker_celery_conf, worker_env
from oomlab.worker.limits.discovery import own_memory_group
from oomlab.worker.share import LOG_FILE, PROBE_FILE, WorkerShare
from oomlab.worker.temp_dir import leased_temp_dir, removed_after_exec


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "worker", help="run a scenario's worker for `oomlab run --attach` (a Compose service)"
    )
    parser.add_argument("scenario", help="a built-in scenario name or a path to a scenario .py file")
    parser.add_argument(
        "--share",
        required=True,
        metavar="DIR",
        help="a directory shared with the attaching oomlab: worker.json and the probe's record go there",
    )
    add_url_flags(parser, "broker", "the broker URL (e.g. redis://redis:6379/0)", required=True)
    add_url_flags(parser, "result_backend", "result backend URL (default: the broker, which must then be Redis)")
    add_worker_settings(parser)
    parser.add_argument("--queue", help="the queue to consume (default oomlab.SCENARIO)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    config = resolve(scenario, run_options(args, broker=None, result_backend=None))
    backend_url = args.result_backend or args.broker
    if not backend_url.startswith("redis"):
        raise BadInput("--result-backend is needed when the broker is not Redis (AMQP keeps no results)")
    for url, role in {backend_url: "result backend", args.broker: "broker"}.items():
        check_reachable(url, role)
    share_dir = WorkerShare.prepare(args.share)
    queue = args.queue or f"oomlab.{scenario.name}"
    hostname = f"oomlab-worker-{scenario.name}@{socket.gethostname()}"
    overrides, params = config.celery_conf, config.params
    celery_conf = worker_celery_conf(scenario, overrides, args.broker, backend_url, queue)
    probe_path = os.path.join(share_dir, PROBE_FILE)
    directory, version, path = own_memory_group()
    WorkerShare(
        scenario=args.scenario,
        variant=config.variant,
        params=params,
        concurrency=config.concurrency,
        pool=config.pool,
        broker=args.broker,
        result_backend=backend_url,
        queue=queue,
        hostname=hostname,
        pid=os.getpid(),
        cgroup_dir=directory,
        cgroup_path=path,
        cgroup_version=version,
        celery_conf=jsonable(overrides),
        started_wall=time.time(),
    ).save(share_dir)
    env = worker_env(scenario, celery_conf, probe_path, queue, params, config.variant, config.tracemalloc, {})
    env["OOMLAB_WORKER_LOG"] = os.path.join(share_dir, LOG_FILE)
    # billiard's pymp-* dirs: removed once the worker is gone; leased to this pid, which becomes the worker
    env["TMPDIR"], tmp_lease = leased_temp_dir()
    removed_after_exec(env["TMPDIR"], tmp_lease)
    argv = worker_argv(config.pool, config.concurrency, queue, hostname)
    # Celery puts the working directory first on sys.path: the worker works in an empty directory of
    # its own, removed before it starts, so nothing can ever be created (or imported) there
    workdir = private_workdir()
    os.chdir(workdir)
    os.rmdir(workdir)
    os.execve(argv[0], argv, env)  # the worker takes this process's pid, the one worker.json names
