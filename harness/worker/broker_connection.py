"""The run's broker and result backend: the user's URLs, checked reachable, or the embedded Redis
for whatever the user did not give (the default path needs no service)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kombu import Queue
from oomlab.config.options import RunConfig
from oomlab.config.routing import declared_queue
from oomlab.config.scenario import Scenario
from oomlab.record.redact import safe_url
from oomlab.record.schema import WorkerSection
from oomlab.worker import client_app
from oomlab.worker.broker import EmbeddedRedis, check_reachable
from oomlab.worker.celery_env import clear_celery_env
from oomlab.worker.launch import jsonable, worker_celery_conf
from oomlab.worker.leftovers import Lease


@dataclass
class BrokerConnection:
    broker_url: str
    backend_url: str
    embedded: EmbeddedRedis | None = None

    @property
    def on_service(self) -> bool:
        """The broker is someone's service (not the embedded one): the run's queue must be deleted."""
        return self.embedded is None or self.broker_url != self.embedded.url

    def worker_conf(
        self,
        scenario: Scenario,
        overrides: dict[str, Any],
        queue: str,
        task_events: bool = True,
        routes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The Celery settings the worker and the client share: the scenario's, the user's, these URLs."""
        return worker_celery_conf(scenario, overrides, self.broker_url, self.backend_url, queue, task_events, routes)

    def point_client(self, app: Any, celery_conf: dict[str, Any], queue: str, arguments: dict[str, Any]) -> Queue:
        """The run's own app sends to the run's queue on this broker; the queue it declares. Only a
        split run's routes are the client's (a run sends to its queue by name, a split run by route)."""
        task_queue = declared_queue(queue, arguments)
        clear_celery_env()  # Celery prefers CELERY_BROKER_URL to the broker it is pointed at
        client_app.point_at(app, {"task_routes": None, **celery_conf, "task_queues": [task_queue]})
        return task_queue

    def describe(self, hostname: str, queue: str, celery_conf: dict[str, Any]) -> WorkerSection:
        """The record's worker section, with URLs masked (never a password in a record)."""
        return WorkerSection(
            hostname=hostname,
            queue=queue,
            broker=safe_url(self.broker_url),
            backend=safe_url(self.backend_url),
            celery_conf=jsonable(celery_conf),
        )

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()


def check_given(config: RunConfig) -> tuple[str | None, str | None]:
    """The broker and result backend the user gave (the backend defaults to a Redis broker), each
    reachable (BrokerUnreachable otherwise): checked before the run directory is made, so a run that
    cannot reach them leaves nothing behind."""
    broker_url = config.broker
    backend_url = config.result_backend or (broker_url if broker_url and broker_url.startswith("redis") else None)
    for url, role in {backend_url: "result backend", broker_url: "broker"}.items():
        if url:
            check_reachable(url, role)
    return broker_url, backend_url


def connect(config: RunConfig, run_dir: str, lease: Lease, may_embed: bool) -> BrokerConnection:
    """Results go to the broker when it is Redis, to an embedded Redis otherwise (AMQP has no
    result backend); an attached run (may_embed False) uses exactly the worker's URLs."""
    broker_url, backend_url = check_given(config)
    if broker_url and backend_url:
        return BrokerConnection(broker_url, backend_url)
    if not may_embed:
        raise ValueError("an attached worker's share names both its broker and its result backend")
    embedded = EmbeddedRedis(run_dir)
    embedded.start(lease)
    return BrokerConnection(broker_url or embedded.url, backend_url or embedded.url, embedded)
