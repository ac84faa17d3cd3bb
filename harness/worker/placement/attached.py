"""A worker oomlab did not start (`oomlab worker` in a Compose service): found through its share
directory, its group read through its own view of it, watched and never stopped, limited or leased."""

from __future__ import annotations

import os

from oomlab.config.options import RunConfig
from oomlab.record.schema import Attachment, GroupSection, WorkerSection
from oomlab.worker.attached_process import AttachedWorker
from oomlab.worker.leftovers import Lease
from oomlab.worker.limits.attached import open_attached_group
from oomlab.worker.placement.base import Placement, Step, WorkerLaunch, WorkerProcess
from oomlab.worker.share import LOG_FILE, PROBE_FILE, WorkerShare, copy_share_file


class Attached(Placement):
    kind = "attached"
    owns_worker = False

    def __init__(self, config: RunConfig, run_id: str, run_dir: str, lease: Lease, share: WorkerShare):
        super().__init__(config, run_id, run_dir, lease)
        self.share = share
        assert config.attach is not None
        self.directory = config.attach

    def queue(self) -> str:
        return self.share.queue

    def hostname(self, host: str) -> str:
        return self.share.hostname

    @property
    def log_path(self) -> str:
        return os.path.join(self.directory, LOG_FILE)

    @property
    def probe_path(self) -> str:
        return os.path.join(self.directory, PROBE_FILE)

    def launch(self, launch: WorkerLaunch) -> WorkerProcess:
        """Nothing is started: the share's worker is watched through a pidfd, and never leased."""
        share = self.share
        self.group = open_attached_group(share.pid, share.cgroup_dir, share.cgroup_path)
        worker = AttachedWorker(share.pid)
        self.workers.append(worker)
        return worker

    def restart(self) -> WorkerProcess:
        return self.worker  # someone else's worker: its own supervisor restarts it

    def stop_steps(self, quick: bool) -> list[Step]:
        return [w.close for w in self.workers if isinstance(w, AttachedWorker)]  # left running, never stopped

    def finish(self) -> list[str]:
        """The worker's probe record and log live in its share (a Compose volume, out of the user's
        sight): the run directory gets a copy, the worker's whole life so far."""
        errors = []
        for name in (PROBE_FILE, LOG_FILE):
            try:
                copy_share_file(self.directory, name, self.run_dir)  # never through a link, private, masked
            except OSError as exc:
                errors.append(f"copying {name}: {exc}")
        return errors

    def describe_group(self, section: GroupSection) -> None:
        super().describe_group(section)
        share = self.share
        section.path = f"{share.cgroup_dir} (as the worker, pid {share.pid}, sees it)"
        section.cgroup_path = share.cgroup_path
        section.peak_since = "the worker's start (an attached run cannot reset it)"

    def describe_worker(self, section: WorkerSection) -> None:
        section.attached = Attachment(share=os.path.abspath(self.directory), started_wall=self.share.started_wall)
