"""Limits backends: where the worker runs and what bounds its memory."""

from oomlab.worker.limits.base import CgroupBackend, OomScope
from oomlab.worker.limits.discovery import open_cgroup_backend

__all__ = ["CgroupBackend", "OomScope", "open_cgroup_backend"]
