"""The run's side of --profile, as a hook: each collect reads the captures of executions that are
final into the record; once the record is final, memray's flame graphs are drawn beside them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from oomlab.run.hooks import RunHook

if TYPE_CHECKING:
    from oomlab.observe.profiling.collect import ProfileCollector
    from oomlab.run.view import RunView


class ProfileReader(RunHook):
    """Does nothing unless the run's config chose tasks to profile."""

    def __init__(self) -> None:
        self.collector: ProfileCollector | None = None

    def _collector(self, run: RunView) -> ProfileCollector | None:
        if self.collector is None and run.config.profile:
            from oomlab.observe.profiling.collect import ProfileCollector

            self.collector = ProfileCollector(run.run_dir, run.config.profile)
        return self.collector

    def collect(self, run: RunView, final: bool = False) -> None:
        collector = self._collector(run)
        if collector is not None and run.evidence is not None and run.observers is not None:
            collector.collect(run.record, run.evidence.observations.probe, run.observers.wall_offset, final)

    def finished(self, run: RunView) -> None:
        collector = self._collector(run)
        if collector is not None:
            self.collect(run, final=True)  # every capture read once more, whole now
            if run.evidence is not None:
                collector.render_flamegraphs(run.evidence.observations.probe)
            self.collect(run)  # the flame graphs' paths into the record
