"""The Docker engine and the worker image: reachable or one clear sentence, and an image built once
from workers/Dockerfile with oomlab installed from a wheelhouse made on the host (no registry needed
when the base image is already present)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

from harness import __version__
from harness.errors import OomlabError

EXIT_DOCKER = 8
DOCKER_MIN_MEMORY = 6 * 1024 * 1024  # Docker refuses --memory below 6 MiB
DEFAULT_BASE = os.environ.get("OOMLAB_DOCKER_BASE", "python:3.11-slim")
PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class DockerUnavailable(OomlabError):
    exit_code = EXIT_DOCKER


def docker(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise DockerUnavailable(
            "the docker command is not installed; install Docker or use --placement cgroup"
        ) from None
    except subprocess.TimeoutExpired:
        raise DockerUnavailable(f"`docker {args[0]}` did not answer within {timeout:.0f} s") from None
    if check and result.returncode != 0:
        raise DockerUnavailable(
            f"`docker {' '.join(args[:2])}` failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}"
        )
    return result


def check_docker_config(memory_bytes: int, oom_scope: str) -> None:
    """What Docker cannot do, said before anything starts."""
    from harness.errors import BadInput

    if memory_bytes < DOCKER_MIN_MEMORY:
        raise BadInput(f"Docker's smallest memory limit is 6 MiB; --memory {memory_bytes} bytes is below it")
    check_engine()


def check_engine() -> str:
    result = docker("info", "--format", "{{.ServerVersion}}", timeout=10, check=False)
    if result.returncode != 0:
        raise DockerUnavailable(
            "no Docker engine is reachable (is dockerd running, and DOCKER_HOST right?); "
            "start it, or use --placement cgroup"
        )
    return result.stdout.strip()


def source_digest() -> str:
    """A digest of the code the image installs, so an image never runs older code than the host."""
    digest = hashlib.sha256()
    for package in ("harness", "scenarios"):
        for root, dirs, files in sorted(os.walk(os.path.join(PROJECT, package))):
            dirs.sort()
            for name in sorted(f for f in files if f.endswith(".py")):
                with open(os.path.join(root, name), "rb") as handle:
                    digest.update(name.encode() + handle.read())
    for extra in ("pyproject.toml", os.path.join("workers", "Dockerfile")):
        with open(os.path.join(PROJECT, extra), "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()[:12]


def worker_image(base: str = DEFAULT_BASE) -> str:
    """The worker image for this oomlab version and base, built once and reused."""
    tag = f"oomlab-worker:{__version__}-{source_digest()}-{base.replace(':', '-').replace('/', '-')}"
    if docker("image", "inspect", tag, check=False).returncode == 0:
        return tag
    if docker("image", "inspect", base, check=False).returncode != 0:
        raise DockerUnavailable(
            f"the base image {base} is not present and no registry may be reachable; "
            f"build or load it, or set OOMLAB_DOCKER_BASE"
        )
    with tempfile.TemporaryDirectory() as context:
        shutil.copy(os.path.join(PROJECT, "workers", "Dockerfile"), context)
        wheels = os.path.join(context, "wheels")
        # async-timeout: redis needs it below Python 3.11.3 (Debian's 3.11.2), which the host may not be
        made = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", wheels, PROJECT, "async-timeout"],
            capture_output=True,
            text=True,
        )
        if made.returncode != 0:
            raise DockerUnavailable(f"could not make the wheelhouse for the worker image: {made.stderr.strip()[-300:]}")
        built = docker("build", "-q", "--build-arg", f"BASE={base}", "-t", tag, context, timeout=900, check=False)
        if built.returncode != 0:
            raise DockerUnavailable(
                f"the worker image could not be built from workers/Dockerfile on {base}: "
                f"{(built.stderr or built.stdout).strip()[-300:]}"
            )
    _remove_older_images(tag)
    return tag


def _remove_older_images(current: str) -> None:
    """Images of earlier code on the same base: one per code change would pile up otherwise. An image
    a container still uses is kept (no -f)."""

    def base_of(tag: str) -> str:  # oomlab-worker:<version>-<digest>-<base>
        return tag.split(":", 1)[-1].split("-", 2)[-1]

    listed = docker("images", "--format", "{{.Repository}}:{{.Tag}}", "oomlab-worker", check=False).stdout.split()
    for tag in listed:
        if tag != current and base_of(tag) == base_of(current):
            docker("rmi", tag, check=False)
