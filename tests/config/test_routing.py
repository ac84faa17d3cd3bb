"""Split queues in a run (oomlab.config.routing): Celery's own router, pointed the way a run points the
client, sends each task name to its class's queue and anything unrouted to the default queue nobody
consumes; the next run's settings replace the last run's routes; a class's load sends its kinds only."""

from __future__ import annotations

import dataclasses
import itertools
import os

import pytest
from celery import Celery
from oomlab.config.load_mix import call_source
from oomlab.config.options import RunConfig, RunOptions, resolve
from oomlab.config.routing import class_plan, class_queue, class_tasks, task_routes
from oomlab.config.scenario import load_scenario
from oomlab.errors import ScenarioFailed
from oomlab.worker.broker_connection import BrokerConnection

ROUTES = {"capacity_mix.io": "small", "capacity_mix.heavy": "big"}


def config(worker_class: str = "") -> RunConfig:
    scenario = load_scenario("capacity_mix")
    return dataclasses.replace(resolve(scenario, RunOptions()), routes=dict(ROUTES), worker_class=worker_class)


def point(app: Celery, base: str, worker_class: str, routes: dict | None) -> None:
    """What Run._start does to the client app (oomlab.run.runner), on a broker nothing is sent to."""
    connection = BrokerConnection("memory://", "cache+memory://")
    conf = connection.worker_conf(load_scenario("capacity_mix"), {}, base, routes=routes)
    connection.point_client(app, conf, class_queue(base, worker_class), {})


def test_the_router_sends_each_kind_to_its_class_and_the_rest_to_the_unconsumed_default():
    app = Celery("t", set_as_current=False)
    point(app, "oomlab.r1", "small", task_routes("oomlab.r1", ROUTES))
    route = app.amqp.router.route({}, "capacity_mix.io")["queue"]
    assert (route.name, route.exchange.name, route.routing_key) == ("oomlab.r1.small",) * 3
    assert app.amqp.router.route({}, "capacity_mix.heavy")["queue"].name == "oomlab.r1.big"
    stray = app.amqp.router.route({}, "other.task")["queue"]
    # the default queue has its own exchange: the small class's queue is not bound to it
    assert (stray.name, stray.exchange.name, stray.routing_key) == ("oomlab.r1",) * 3


def test_a_later_run_does_not_inherit_the_last_runs_routes_or_queues():
    app = Celery("t", set_as_current=False)
    point(app, "oomlab.r1", "small", task_routes("oomlab.r1", ROUTES))
    assert app.amqp.router.route({}, "capacity_mix.io")["queue"].name == "oomlab.r1.small"
    point(app, "oomlab.r2", "", None)  # a plain run next, in the same process
    route = app.amqp.router.route({}, "capacity_mix.io")["queue"]
    assert (route.name, route.exchange.name) == ("oomlab.r2", "oomlab.r2")


def test_a_split_run_sends_only_its_classs_kinds():
    assert class_tasks(config()) is None  # not split: every task
    assert class_tasks(config("small")) == {"capacity_mix.io"}
    scenario = load_scenario("capacity_mix")
    ctx = config("big").context("/tmp")
    calls, source = call_source(scenario, ctx, 0, class_tasks(config("big")))
    assert {call.task for call in itertools.islice(calls, 200)} == {"capacity_mix.heavy"}
    assert "only capacity_mix.heavy" in source
    everything, _ = call_source(scenario, ctx, 0)
    assert {call.task for call in itertools.islice(everything, 200)} == set(ROUTES)
    plan = class_plan(scenario.plan(ctx), config("small"))
    assert plan.calls and {call.task for call in plan.calls} == {"capacity_mix.io"}
    with pytest.raises(ScenarioFailed, match="no call of"):
        call_source(scenario, ctx, 0, frozenset({"capacity_mix.missing"}))


def test_a_split_run_consumes_its_classs_queue_and_sends_by_route_not_by_name(tmp_path):
    from oomlab.run.runner import Run  # constructing a run makes nothing: the group and files come at execute()

    scenario = load_scenario("capacity_mix")
    split = Run(scenario, dataclasses.replace(config("small"), results_dir=str(tmp_path)))
    assert split.queue == f"{split.default_queue}.small" and split.queues == [split.queue, split.default_queue]
    split.task_queue = object()  # what _start() declares; a split run still sends through task_routes
    assert split.send_queue is None
    plain = Run(scenario, dataclasses.replace(config(""), results_dir=str(tmp_path)))
    plain.task_queue = queue = object()
    assert plain.queue == plain.default_queue and plain.queues == [plain.queue] and plain.send_queue is queue
    assert os.listdir(tmp_path) == []
