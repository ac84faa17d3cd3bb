"""`oomlab lab delivery`: one real run per cell of the matrix, a few at a time, each in its own
process (a Run owns its process's signal handlers and the scenario's Celery app), its own cgroup,
broker queue and embedded Redis. lab.json is rewritten after every cell, so an interrupted lab
keeps every finished cell."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from oomlab.config.lab_cells import Cell
from oomlab.config.options import RunConfig, RunOptions, resolve
from oomlab.config.scenario import Scenario, load_scenario
from oomlab.errors import BadInput, Interrupted, OomlabError
from oomlab.record.schema import DeliverySection, write_json_atomic
from oomlab.record.typed_json import ShapeError, from_json
from oomlab.run.runner import Run
from oomlab.run.signals import RunSignals
from oomlab.run.standard import standard_hooks
from oomlab.workflows.lab.observer import DeliveryObserver

LAB_SCHEMA = "oomlab.lab.delivery/1"
SCENARIO = "oom-victim"


@dataclass
class LabOptions:
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    memory: str = "192MiB"
    window: float | None = None  # None: long enough for what each cell can show (window_for)
    visibility_timeout: float = 10.0
    restore_interval: float = 10.0  # kombu's defaults: a restore sweep every 10 s x 10
    restore_throttle: int = 10
    restart_delay: float = 1.0
    delivery_limit: int = 2
    retry_delay: float = 1.0
    max_retries: int = 3
    jobs: int = 4
    results_dir: str = "results"


@dataclass
class CellResult:
    cell: Cell
    status: str  # complete | error | interrupted
    run_dir: str | None
    message: str | None = None
    delivery: DeliverySection | None = None  # the cell's run's, as run.json holds it


def window_for(cell: Cell, options: LabOptions) -> float:
    """Seconds to watch a cell: a whole-worker kill needs a restart; on Redis an acks_late message
    held in `unacked` comes back only after visibility_timeout and kombu's next restore sweep."""
    if options.window is not None:
        return options.window
    if cell.scope == "child":
        # Celery's main process can take up to ~5 s to notice a dead child; each retry waits retry_delay
        return 12.0 + (options.max_retries * (options.retry_delay + 5.0) if cell.retry == "on" else 0.0)
    if cell.broker == "redis" and cell.acks == "late":
        return options.visibility_timeout + options.restore_interval * options.restore_throttle + 15.0
    return 20.0


def cell_config(scenario: Scenario, cell: Cell, options: LabOptions, lab_dir: str) -> RunConfig:
    celery_conf: dict = {**cell.celery_conf(), "worker_prefetch_multiplier": 1}
    if cell.broker == "redis":
        celery_conf["broker_transport_options"] = {
            "visibility_timeout": options.visibility_timeout,
            "unacked_restore_interval": options.restore_interval,
            "unacked_restore_throttle": options.restore_throttle,
        }
    window = window_for(cell, options)
    options_for_cell = RunOptions(
        memory=options.memory,
        concurrency=1,
        tasks=1,
        variant=cell.oom,
        results_dir=lab_dir,
        timeout=window,
        settle=3.0,
        max_oom_redeliveries=0,  # the lab watches the redelivery loop itself
        params={"retry_delay": options.retry_delay, "max_retries": options.max_retries, "window": window},
        broker=None if cell.broker == "redis" else options.rabbitmq_url,
        oom_scope="process" if cell.scope == "child" else "group",
        restart="always",
        restart_delay=options.restart_delay,  # as a supervisor would, in both scopes
        queue_arguments={"x-queue-type": "quorum", "x-delivery-limit": options.delivery_limit}
        if cell.broker == "quorum"
        else {},
        celery=celery_conf,
    )
    return resolve(scenario, options_for_cell)


def _run_cell(cell: Cell, options: LabOptions, lab_dir: str, reply) -> None:
    """The body of a cell's own process: one Run, its outcome sent back through `reply`."""
    run = None
    try:
        scenario = load_scenario(SCENARIO)
        settings = {
            "window_s": window_for(cell, options),
            **{k: v for k, v in asdict(options).items() if k not in ("jobs", "results_dir", "rabbitmq_url")},
        }
        run = Run(
            scenario,
            cell_config(scenario, cell, options, lab_dir),
            hooks=(*standard_hooks(), DeliveryObserver(cell, settings)),
        )
        run.execute()
        reply.send(CellResult(cell, "complete", run.run_dir, run.record.message, run.record.delivery))
    except Interrupted:
        reply.send(
            CellResult(
                cell, "interrupted", run.run_dir if run else None, "interrupted", run.record.delivery if run else None
            )
        )
    except OomlabError as error:
        reply.send(
            CellResult(cell, "error", run.run_dir if run else None, error.message, run.record.delivery if run else None)
        )
    except Exception as error:  # reported as the cell's result; the lab goes on
        reply.send(CellResult(cell, "error", run.run_dir if run else None, f"{type(error).__name__}: {error}"))


def new_lab_dir(results_dir: str) -> str:
    lab_dir = os.path.abspath(
        os.path.join(results_dir, f"lab-delivery-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}")
    )
    os.makedirs(lab_dir, exist_ok=True)
    return lab_dir


def run_lab(
    cells: list[Cell], options: LabOptions, lab_dir: str, on_done: Callable[[int, CellResult], None]
) -> list[CellResult]:
    results: dict[int, CellResult] = {}
    context = multiprocessing.get_context("fork")
    running: dict[int, tuple] = {}
    waiting = list(enumerate(cells))
    status = "running"
    try:
        with RunSignals():
            while waiting or running:
                while waiting and len(running) < options.jobs:
                    index, cell = waiting.pop(0)
                    receive, send = context.Pipe(duplex=False)
                    process = context.Process(target=_run_cell, args=(cell, options, lab_dir, send), daemon=False)
                    process.start()
                    send.close()
                    running[index] = (process, receive)
                for index, (process, receive) in list(running.items()):
                    if receive.poll():
                        results[index] = receive.recv()
                    elif process.exitcode is None:
                        continue
                    process.join()
                    results.setdefault(
                        index,
                        CellResult(
                            cells[index], "error", None, f"the cell's process exited with code {process.exitcode}"
                        ),
                    )
                    del running[index]
                    _save(lab_dir, options, cells, results, status)
                    on_done(index, results[index])
                time.sleep(0.05)
        status = "complete"
    except Interrupted:
        status = "interrupted"
        _stop_cells(running, results, cells)
        raise
    finally:
        _save(lab_dir, options, cells, results, status)
    return [results[i] for i in sorted(results)]


def _stop_cells(running: dict, results: dict, cells: list[Cell]) -> None:
    """Each cell cleans up after itself on SIGTERM (a Ctrl-C already reached it through the terminal)."""
    for process, _ in running.values():
        if process.exitcode is None:
            os.kill(process.pid, signal.SIGTERM)
    for index, (process, receive) in running.items():
        process.join(timeout=30)
        if receive.poll(0):
            results[index] = receive.recv()
        else:
            results.setdefault(index, CellResult(cells[index], "interrupted", None, "interrupted"))


def read_cells(lab: dict, source: str = "lab.json") -> list[CellResult]:
    """lab.json's cells as the lab wrote them (a cell not run yet is `pending`); BadInput (one
    sentence) for a cell that does not fit."""
    entries = lab.get("cells") or []
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise BadInput(f"{source} is not a delivery lab record: its cells are not a list of objects")
    try:
        return [
            CellResult(
                from_json(Cell, entry.get("cell")),
                entry.get("status", "pending"),
                entry.get("run_dir"),
                entry.get("message"),
                from_json(DeliverySection, entry["delivery"]) if entry.get("delivery") else None,
            )
            for entry in entries
        ]
    except ShapeError as error:
        raise BadInput(f"{source} holds a cell that does not fit {LAB_SCHEMA}: {error}") from None


def _save(lab_dir: str, options: LabOptions, cells: list[Cell], results: dict[int, CellResult], status: str) -> None:
    write_json_atomic(
        os.path.join(lab_dir, "lab.json"),
        {
            "schema": LAB_SCHEMA,
            "status": status,
            "options": asdict(options),
            "cells": [
                {
                    "cell": cell.as_dict(),
                    **(
                        {k: v for k, v in asdict(results[i]).items() if k != "cell"}
                        if i in results
                        else {"status": "pending"}
                    ),
                }
                for i, cell in enumerate(cells)
            ],
        },
    )
