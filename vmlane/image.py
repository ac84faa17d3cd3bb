"""The VM's root disk: Debian (debootstrap) with oomlab's dependencies from a host-made wheelhouse.

Built once per machine and reused until what it holds changes (the key digests pyproject.toml, the
package list and the guest's init); the project's own code is not in it but sent with each job.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

from vmlane.errors import VmUnavailable
from vmlane.mirror import machine_mirror

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUEST = os.path.join(PROJECT, "vmlane", "guest")
# passwd, util-linux: in minbase. python3-pip: the same root filesystem is .ci/run's Docker base image
# (`python -m vmlane rootfs`), whose Dockerfiles install with pip: one debootstrap per machine, not two
PACKAGES = ("python3", "python3-pip", "python3-venv", "iproute2", "ca-certificates")
SUITE = "bookworm"
# tester: owns a delegated subtree; stranger: has none (the no-permission path)
USERS = (("tester", 1000), ("stranger", 1001))


def cache_dir() -> str:
    return os.environ.get("OOMLAB_VM_CACHE", "/var/cache/oomlab/vm")


@dataclass(frozen=True)
class Kernel:
    vmlinuz: str
    initrd: str

    @property
    def release(self) -> str:
        return os.path.basename(self.vmlinuz).removeprefix("vmlinuz-")


def find_kernel() -> Kernel:
    """The host's packaged Debian kernel (linux-image-cloud-amd64): a real v2 kernel to boot."""
    for vmlinuz in sorted(glob.glob("/boot/vmlinuz-*"), reverse=True):
        initrd = vmlinuz.replace("vmlinuz-", "initrd.img-")
        if os.path.exists(initrd):
            return Kernel(vmlinuz, initrd)
    raise VmUnavailable("no kernel with an initrd in /boot: install Debian's linux-image-cloud-amd64")


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()[:12]


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def image_key() -> str:
    return _digest(
        _read(os.path.join(PROJECT, "pyproject.toml")),
        _read(os.path.join(GUEST, "init.sh")),
        repr((PACKAGES, SUITE, USERS, sys.version_info[:2])).encode(),
    )


def _run(argv: list[str], what: str, timeout: float = 900, **kwargs) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    except FileNotFoundError:
        raise VmUnavailable(f"cannot {what}: {argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise VmUnavailable(f"cannot {what}: it took over {timeout:.0f} s") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise VmUnavailable(f"cannot {what}: {' / '.join(tail) or f'exit code {done.returncode}'}")


def _mirror() -> str:
    mirror = machine_mirror(SUITE)
    if mirror is None:
        raise VmUnavailable(f"apt's sources on this machine name no Debian mirror for {SUITE}; debootstrap needs one")
    return mirror


def base_rootfs() -> str:
    """Debian minbase with the packages, made once (a minute) and kept pristine for every image (and
    imported as the Docker lane's base image)."""
    rootfs = os.path.join(cache_dir(), f"rootfs-{_digest(repr((PACKAGES, SUITE)).encode())}")
    if os.path.exists(os.path.join(rootfs, ".complete")):
        return rootfs
    shutil.rmtree(rootfs, ignore_errors=True)
    os.makedirs(rootfs)
    _run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, rootfs, _mirror()],
        "make the VM's Debian root filesystem with debootstrap",
    )
    open(os.path.join(rootfs, ".complete"), "w").close()
    return rootfs


def _wheelhouse(into: str) -> list[str]:
    """Wheels of oomlab's dependencies and test tools, made on the host (the VM has no network)."""
    # async-timeout: redis needs it below Python 3.11.3 (Debian's 3.11.2), which the host may not be
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", into, f"{PROJECT}[test]", "async-timeout"],
        "make the wheelhouse for the VM",
    )
    ours = glob.glob(os.path.join(into, "oomlab-*.whl"))
    for wheel in ours:  # the project's code travels with each job, not in the image
        os.remove(wheel)
    return sorted(os.path.basename(w) for w in glob.glob(os.path.join(into, "*.whl")))


def _install(rootfs: str) -> None:
    wheels = _wheelhouse(os.path.join(rootfs, "wheels"))
    _run(["chroot", rootfs, "python3", "-m", "venv", "/opt/venv"], "make the VM's Python environment")
    _run(
        [
            "chroot",
            rootfs,
            "/opt/venv/bin/pip",
            "install",
            "-q",
            "--no-index",
            "--find-links",
            "/wheels",
            *(f"/wheels/{w}" for w in wheels),
        ],
        "install oomlab's dependencies in the VM image",
    )
    shutil.rmtree(os.path.join(rootfs, "wheels"))
    for name, uid in USERS:
        _run(
            ["chroot", rootfs, "useradd", "--create-home", "--uid", str(uid), "--user-group", name],
            f"add the VM's user {name}",
        )
    shutil.copy(os.path.join(GUEST, "init.sh"), os.path.join(rootfs, "sbin", "oomlab-init"))
    os.chmod(os.path.join(rootfs, "sbin", "oomlab-init"), 0o755)


def _disk_size(rootfs: str) -> int:
    used = int(subprocess.run(["du", "-sb", rootfs], capture_output=True, text=True).stdout.split()[0])
    return (used + 768 * 2**20) // 2**20 * 2**20  # room for pytest's files and the runs' logs


def build_image() -> str:
    """The path of the root disk image for this key, built now if absent (older keys' images removed)."""
    key = image_key()
    image = os.path.join(cache_dir(), f"root-{key}.img")
    if os.path.exists(image):
        return image
    find_kernel()
    os.makedirs(cache_dir(), exist_ok=True)
    staging = os.path.join(cache_dir(), f"staging-{key}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _run(["cp", "-a", base_rootfs(), staging], "copy the VM's root filesystem")
        _install(staging)
        partial = image + ".partial"
        with open(partial, "wb") as handle:
            handle.truncate(_disk_size(staging))
        _run(["mkfs.ext4", "-q", "-F", "-L", "oomlab-vm", "-d", staging, partial], "make the VM's disk image")
        os.replace(partial, image)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for older in glob.glob(os.path.join(cache_dir(), "root-*.img*")):
        if older != image:
            os.remove(older)
    return image
