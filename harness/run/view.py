"""What a hook sees of a run: read-only properties, so the type checker proves no hook rebinds the
run's state (its broker, its replay, its record). A hook may still add to the record's sections, as
the protocol in oomlab.run.hooks says; `Run` satisfies this protocol as it is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from oomlab.config.options import RunConfig
    from oomlab.config.scenario import Scenario
    from oomlab.observe.evidence import Evidence
    from oomlab.observe.observers import Observers
    from oomlab.record.schema import RunRecord
    from oomlab.run.replay import Following
    from oomlab.worker.broker_connection import BrokerConnection
    from oomlab.worker.limits.base import CgroupBackend


class RunView(Protocol):
    @property
    def scenario(self) -> Scenario: ...

    @property
    def config(self) -> RunConfig: ...

    @property
    def run_dir(self) -> str: ...

    @property
    def queue(self) -> str:
        """The queue the run's worker consumes."""

    @property
    def record(self) -> RunRecord:
        """The record as last assembled (a hook's `collect` and `finished` add their sections to it)."""

    @property
    def connection(self) -> BrokerConnection | None: ...

    @property
    def observers(self) -> Observers | None: ...

    @property
    def evidence(self) -> Evidence | None:
        """The evidence the record was last assembled from."""

    @property
    def group(self) -> CgroupBackend | None:
        """The worker's memory cgroup, once the placement made or found it."""

    @property
    def replay(self) -> Following | None:
        """What sends the run's work: a plan's replay or a load driver."""
