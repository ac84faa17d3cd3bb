"""Find where this process may create memory cgroups, on v1 or v2, and say plainly when it can't."""

from __future__ import annotations

import os

from oomlab.errors import NoPermission
from oomlab.worker.limits.base import CgroupBackend, read_text
from oomlab.worker.limits.cgroup_v1 import CgroupV1
from oomlab.worker.limits.cgroup_v2 import CgroupV2

PARENT_NAME = "oomlab"
_HOW_TO_GET_ONE = (
    "run oomlab as root, inside a systemd scope with a delegated memory controller "
    "(systemd-run --user --scope -p Delegate=yes oomlab run ...), or set OOMLAB_CGROUP_PARENT "
    "to a cgroup directory you may write"
)


def _mounts() -> list[tuple[str, str, str]]:
    """(mount point, fs type, options) of cgroup mounts."""
    found = []
    for line in (read_text("/proc/self/mounts") or "").splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
            found.append((parts[1], parts[2], parts[3]))
    return found


def _own_cgroups() -> dict[str, str]:
    """Controller list ('' for v2) -> this process's cgroup path."""
    own = {}
    for line in (read_text("/proc/self/cgroup") or "").splitlines():
        _, controllers, path = line.split(":", 2)
        own[controllers] = path
    return own


def _v2_memory_root() -> str | None:
    for mount, fstype, _ in _mounts():
        if fstype == "cgroup2" and "memory" in (read_text(os.path.join(mount, "cgroup.controllers")) or "").split():
            return mount
    return None


def _v1_memory_dir() -> str | None:
    own = _own_cgroups()
    for mount, fstype, options in _mounts():
        if fstype == "cgroup" and "memory" in options.split(","):
            for controllers, path in own.items():
                if "memory" in controllers.split(","):
                    return os.path.join(mount, path.lstrip("/"))
    return None


def _writable(directory: str) -> bool:
    return os.access(directory, os.W_OK | os.X_OK)


def _can_write(file: str) -> bool:
    return os.access(file, os.W_OK)  # not X_OK: a cgroup's files are never executable, even for root


def _v2_parent(root: str) -> str | None:
    """The nearest cgroup at or above our own in which we may enable memory for children."""
    current = os.path.normpath(os.path.join(root, _own_cgroups().get("", "/").lstrip("/")))
    while True:
        candidate = os.path.join(current, PARENT_NAME)
        if os.path.isdir(candidate) and _writable(candidate):
            return candidate
        if _writable(current) and _can_write(os.path.join(current, "cgroup.subtree_control")):
            subtree = (read_text(os.path.join(current, "cgroup.subtree_control")) or "").split()
            # a cgroup with processes of its own cannot hand controllers down (unless it is root)
            busy = bool((read_text(os.path.join(current, "cgroup.procs")) or "").split())
            if "memory" in subtree or not busy or current == root:
                return candidate
        if os.path.normpath(current) == os.path.normpath(root):
            return None
        current = os.path.dirname(current)


def open_cgroup_backend(run_id: str) -> CgroupBackend:
    """A backend for this run's cgroup (not yet created), or NoPermission with what would work."""
    override = os.environ.get("OOMLAB_CGROUP_PARENT")
    v2_root = _v2_memory_root()
    if override:
        backend_cls = CgroupV2 if v2_root and override.startswith(v2_root) else CgroupV1
        if not _writable(os.path.dirname(override.rstrip("/")) if not os.path.isdir(override) else override):
            raise NoPermission(
                f"cannot create a memory cgroup under OOMLAB_CGROUP_PARENT={override}: not writable; {_HOW_TO_GET_ONE}"
            )
        return backend_cls(override, run_id)
    if v2_root:
        parent = _v2_parent(v2_root)
        if parent is None:
            raise NoPermission(
                f"cannot create a memory cgroup: no cgroup v2 directory above this process is writable "
                f"by uid {os.getuid()} with the memory controller delegated; {_HOW_TO_GET_ONE}"
            )
        return CgroupV2(parent, run_id)
    v1_dir = _v1_memory_dir()
    if v1_dir is None:
        raise NoPermission(
            f"no cgroup memory controller is mounted on this host; use --placement docker or {_HOW_TO_GET_ONE}"
        )
    if not _writable(v1_dir):
        raise NoPermission(
            f"cannot create a memory cgroup: {v1_dir} is not writable by uid {os.getuid()}; {_HOW_TO_GET_ONE}"
        )
    return CgroupV1(os.path.join(v1_dir, PARENT_NAME), run_id)


def own_memory_group() -> tuple[str, int, str]:
    """This process's memory cgroup: (its directory as this process sees it, the cgroup version, its
    path as this process's cgroup namespace shows it). In a container the directory is the
    container's own group, mounted where the container sees /sys/fs/cgroup."""
    own = _own_cgroups()
    for line in (read_text("/proc/self/mountinfo") or "").splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        tail = fields[fields.index("-") + 1 :]
        root, mount, fstype, options = fields[3], fields[4], tail[0], tail[2] if len(tail) > 2 else ""
        if fstype == "cgroup2" and "" in own:
            if "memory" not in (read_text(os.path.join(mount, "cgroup.controllers")) or "").split():
                continue
            version, path = 2, own[""]
        elif fstype == "cgroup" and "memory" in options.split(","):
            found = next((p for c, p in own.items() if "memory" in c.split(",")), None)
            if found is None:
                continue
            version, path = 1, found
        else:
            continue
        directory = os.path.normpath(os.path.join(mount, os.path.relpath(path, root)))
        if os.path.commonpath([directory, mount]) == mount and os.path.isdir(directory):
            return directory, version, path
    raise NoPermission("this process is in no memory cgroup it can see (no memory controller is mounted here)")
