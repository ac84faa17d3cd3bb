"""Run one job in the VM: the project's files and a script in on one raw disk (a tar), the job's
output and exit code back on another, the console streamed meanwhile.

qemu runs under TCG (software emulation). These machines' /dev/kvm is kvm_pvm (pagetable-based
virtualisation: the CPU shows no vmx/svm), which runs only kernels built as PVM guests; Debian's kernel
there runs at a crawl (a minute to decompress itself: emulated, by the timings) and stops early in boot
(docs/contributing.md). The root disk is a snapshot, so the cached image is never changed by a job.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass

from oomlab.worker.proc import die_with_parent

from vmlane.errors import VmNoResult, VmUnavailable
from vmlane.image import PROJECT, find_kernel

OUT_DISK_BYTES = 256 * 2**20
KERNEL_ARGS = "root=/dev/vda rw console=ttyS0 init=/sbin/oomlab-init panic=-1 loglevel=1"


@dataclass
class JobResult:
    exit_code: int
    console: str
    out_dir: str
    boot_seconds: float
    total_seconds: float


def project_files() -> list[str]:
    """Tracked and untracked-but-not-ignored files: what a clean checkout plus local edits holds."""
    listed = subprocess.run(
        ["git", "-C", PROJECT, "ls-files", "-co", "--exclude-standard", "-z"], capture_output=True, text=True
    )
    if listed.returncode == 0:
        return [f for f in listed.stdout.split("\0") if f and os.path.isfile(os.path.join(PROJECT, f))]
    keep = ("harness", "scenarios", "tests", "vmlane", "pyproject.toml")
    found = []
    for root, dirs, files in os.walk(PROJECT):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", ".git", "results")]
        for name in files:
            relative = os.path.relpath(os.path.join(root, name), PROJECT)
            if relative.split(os.sep)[0] in keep:
                found.append(relative)
    return found


def write_job_disk(path: str, script: str) -> None:
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for relative in project_files():
            tar.add(os.path.join(PROJECT, relative), arcname=f"src/{relative}", recursive=False)
        data = script.encode()
        info = tarfile.TarInfo("job.sh")
        info.size, info.mode, info.mtime = len(data), 0o755, int(time.time())
        tar.addfile(info, io.BytesIO(data))


def qemu_argv(image: str, job_disk: str, out_disk: str, cpus: int, memory_mib: int) -> list[str]:
    kernel = find_kernel()
    return [
        "qemu-system-x86_64",
        "-accel",
        "tcg,thread=multi",
        "-cpu",
        "max",
        "-smp",
        str(cpus),
        "-m",
        str(memory_mib),
        "-nographic",
        "-no-reboot",
        "-kernel",
        kernel.vmlinuz,
        "-initrd",
        kernel.initrd,
        "-append",
        KERNEL_ARGS,
        "-drive",
        f"file={image},format=raw,if=virtio,snapshot=on",
        "-drive",
        f"file={job_disk},format=raw,if=virtio,readonly=on",
        "-drive",
        f"file={out_disk},format=raw,if=virtio",
    ]


def run_job(
    image: str, script: str, out_dir: str, timeout: float = 900, cpus: int = 2, memory_mib: int = 2048, echo=sys.stdout
) -> JobResult:
    """Boot, run `script` (sh, cwd the project's copy at /src) and return its exit code and output."""
    if shutil.which("qemu-system-x86_64") is None:
        raise VmUnavailable("qemu-system-x86_64 is not installed (Debian's qemu-system-x86)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="oomlab-vm-") as scratch:
        job_disk, out_disk = os.path.join(scratch, "job.tar"), os.path.join(scratch, "out.img")
        write_job_disk(job_disk, script)
        with open(out_disk, "wb") as handle:
            handle.truncate(OUT_DISK_BYTES)
        # qemu dies with the lane (PR_SET_PDEATHSIG), and is killed on any way out of here
        proc = subprocess.Popen(
            qemu_argv(image, job_disk, out_disk, cpus, memory_mib),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        lines: list[str] = []
        booted: list[float] = []
        reader = threading.Thread(target=_stream, args=(proc, lines, booted, started, echo), daemon=True)
        reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise VmNoResult(
                f"the VM's job did not finish within {timeout:.0f} s; its console ended with: {_tail(lines)}"
            ) from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(5)
        os.makedirs(out_dir, exist_ok=True)
        try:
            with tarfile.open(out_disk, "r:") as tar:
                for member in tar:
                    try:
                        tar.extract(member, out_dir, filter="data")
                    except tarfile.FilterError:
                        continue  # a link pointing out of the output (pytest's, a run's): not evidence
            with open(os.path.join(out_dir, "rc")) as handle:
                code = int(handle.read().strip())
        except (tarfile.TarError, OSError, ValueError):
            raise VmNoResult(
                f"the VM gave no result (qemu exit code {proc.returncode}): it did not boot or its "
                f"job did not finish; its console ended with: {_tail(lines)}"
            ) from None
    return JobResult(code, "".join(lines), out_dir, (booted or [float("nan")])[0], time.monotonic() - started)


def _stream(proc: subprocess.Popen, lines: list[str], booted: list[float], started: float, echo) -> None:
    assert proc.stdout is not None, "started with stdout=PIPE"
    for raw in iter(proc.stdout.readline, b""):
        line = raw.decode(errors="replace").replace("\r", "")
        lines.append(line)
        if not booted and line.startswith("oomlab-vm:"):
            booted.append(time.monotonic() - started)
        if echo is not None:
            echo.write(f"vm| {line}")
            echo.flush()


def _tail(lines: list[str], count: int = 5) -> str:
    tail = [line.strip() for line in lines if line.strip()][-count:]
    return " / ".join(tail) if tail else "(nothing)"
