"""Where a run ran: kernel, cgroup version, library versions, CPUs, memory."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version

from oomlab.record.schema import Environment


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def describe(group_name: str) -> Environment:
    with open("/proc/meminfo") as handle:
        mem_total_kib = int(handle.readline().split()[1])
    return Environment(
        kernel=platform.release(),
        machine=platform.machine(),
        hostname=platform.node(),
        cgroup=group_name,
        cpus=os.cpu_count(),
        memory_total_bytes=mem_total_kib * 1024,
        python=platform.python_version(),
        versions={name: _version(name) for name in ("oomlab", "celery", "kombu", "billiard", "redis", "psutil")},
        uid=os.getuid(),
    )
