"""Limits backends: where the worker runs and what bounds its memory."""

from harness.limits.base import CgroupBackend, OomScope
from harness.limits.discovery import open_cgroup_backend

__all__ = ["CgroupBackend", "OomScope", "open_cgroup_backend"]
