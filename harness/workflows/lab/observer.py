"""The delivery lab's eyes outside the worker: the broker's queue sampled through the run, the
message located once the workers are gone, and the verdict written into the record's `delivery`."""

from __future__ import annotations

import threading

from oomlab.config.lab_cells import Cell
from oomlab.record.delivery import Depth, Location
from oomlab.record.schema import DeliverySection
from oomlab.run.hooks import RunHook
from oomlab.run.view import RunView
from oomlab.workflows.lab.broker_view import BrokerView, open_view
from oomlab.workflows.lab.verdict import detections, flower_worker_online, judge

SAMPLE_SECONDS = 0.25


class DeliveryObserver(RunHook):
    wants_warm_shutdown = True  # it reads where the broker keeps each message once the workers are gone

    def __init__(self, cell: Cell, settings: dict):
        self.cell = cell
        self.settings = settings  # the lab's options that shaped this cell (window, visibility timeout...)
        self.samples: list[Depth] = []
        self.locations: dict[str, Location] = {}
        self.error: str | None = None
        self._view: BrokerView | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def started(self, run: RunView) -> None:
        assert run.connection is not None
        view = self._view = open_view(run.connection.broker_url, run.queue)
        self._thread = threading.Thread(target=self._sample, args=(view,), name="oomlab-broker-view", daemon=True)
        self._thread.start()

    def _sample(self, view: BrokerView) -> None:
        while not self._stopping.wait(SAMPLE_SECONDS):
            try:
                depth = view.depth()
            except Exception as exc:  # the broker going away ends sampling, not the run
                self.error = f"{type(exc).__name__}: {exc}"
                return
            with self._lock:
                self.samples.append(depth)

    def worker_stopped(self, run: RunView) -> None:
        self._stop_sampling()
        ids = [task.id for task in run.record.tasks]
        if self._view is None:
            return
        try:
            self.locations = {loc.task_id: loc for loc in self._view.locate(ids)}
        except Exception as exc:
            self.error = f"locating the messages failed: {type(exc).__name__}: {exc}"

    def _stop_sampling(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=3)

    def stop(self) -> None:
        self._stop_sampling()
        if self._view is not None:
            self._view.close()

    def collect(self, run: RunView) -> None:
        record = run.record
        with self._lock:
            samples = list(self.samples)
        record.delivery = DeliverySection(
            cell=self.cell,
            settings=self.settings,
            verdicts=[
                judge(task, record.kills, self.locations.get(task.id), record.celery_events) for task in record.tasks
            ],
            locations=list(self.locations.values()),
            detection=detections(record.kills),
            flower_worker_online=flower_worker_online(record.celery_events, record.worker.observed_until_mono),
            worker_restarts=list(record.worker.restarts),
            broker_samples=samples,
            error=self.error,
        )
