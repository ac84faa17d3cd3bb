"""cgroup v1 memory controller: limit_in_bytes, memsw, the oom_control eventfd."""

from __future__ import annotations

import os

from oomlab.worker.limits.base import CgroupBackend, OomNotifier, OomScope, write_text


class CgroupV1(CgroupBackend):
    version = 1
    limit_file = "memory.limit_in_bytes"
    usage_file = "memory.usage_in_bytes"
    peak_file = "memory.max_usage_in_bytes"
    events_file = "memory.oom_control"
    oom_notice_precedes_kill = True  # the eventfd fires as the OOM begins, oom_kill counts the kill

    def apply_limit(self, limit_bytes: int, oom_scope: OomScope) -> None:
        write_text(self.file(self.limit_file), str(limit_bytes))
        if os.path.exists(self.file("memory.memsw.limit_in_bytes")):
            # memory+swap equal to memory: no swap for the group, so an OOM is an OOM
            write_text(self.file("memory.memsw.limit_in_bytes"), str(limit_bytes))
        try:
            write_text(self.file("memory.swappiness"), "0")
        except OSError:
            pass
        # v1 has no memory.oom.group: the group scope is emulated by the OOM detector,
        # which kills the whole group the instant the kernel's notification arrives.

    def prepare_leaves(self) -> None:
        # v1 keeps a moved process's earlier pages where they were charged: no move_charge_at_immigrate
        pass

    def counted_events_files(self) -> list[str]:
        return [self.file(self.events_file)] + [os.path.join(leaf, self.events_file) for leaf in self.leaf_dirs()]

    def open_oom_notifier(self) -> OomNotifier:
        event_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        control_fd = os.open(self.file("memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
        write_text(self.file("cgroup.event_control"), f"{event_fd} {control_fd}")
        return OomNotifier(event_fd, keep_open=(control_fd,))
