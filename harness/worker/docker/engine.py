"""The Docker engine and the worker image: reachable or one clear sentence, and an image built once
from workers/Dockerfile with oomlab installed from a wheelhouse made on the host (no registry needed
when the base image is already present).

oomlab talks to the engine through the Docker SDK for Python over its API socket, not by running the
`docker` command and parsing what it prints: no CLI needs to be installed, and every answer is
Docker's own JSON. The SDK is imported on first use, so loading oomlab (or its pytest plugin) costs
nothing when the Docker placement is not asked for."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from oomlab.errors import OomlabError
from oomlab.trust import run_python, temp_dir
from oomlab.version import __version__

if TYPE_CHECKING:
    import docker as docker_sdk

EXIT_DOCKER = 8
DEFAULT_BASE = os.environ.get("OOMLAB_DOCKER_BASE", "python:3.11-slim")
IMAGE_EXTRAS = "scenarios,png,agent"  # every built-in scenario, timeline.png, and `oomlab agent --metrics`
PROJECT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)  # the repository
API_TIMEOUT_S = 60  # one API call; a build gets BUILD_TIMEOUT_S
BUILD_TIMEOUT_S = 900
NO_ENGINE = (
    "no Docker engine is reachable (is dockerd running, and DOCKER_HOST right?); start it, or use --placement cgroup"
)


class DockerUnavailable(OomlabError):
    exit_code = EXIT_DOCKER


def client() -> docker_sdk.DockerClient:
    """The engine's API client (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH as the CLI reads
    them), made once per process: making it asks the engine for its API version."""
    return _client(os.environ.get("DOCKER_HOST"))


def sdk_errors() -> Any:
    """docker.errors, or DockerUnavailable saying how to install the SDK."""
    try:
        import docker.errors
    except ImportError:
        raise DockerUnavailable(
            "the Docker placement talks to Docker through the Docker SDK for Python, which is not installed: "
            "pip install 'oomlab[docker]'"
        ) from None
    return docker.errors


@functools.cache
def _client(host: str | None) -> docker_sdk.DockerClient:
    """One client per DOCKER_HOST (from_env reads it; the key makes a changed host a new client)."""
    errors = sdk_errors()
    import docker as docker_sdk

    try:
        return docker_sdk.from_env(timeout=API_TIMEOUT_S)
    except errors.DockerException:  # no socket, refused, not an engine, a bad TLS setting
        raise DockerUnavailable(NO_ENGINE) from None


@contextmanager
def engine_errors(doing: str) -> Iterator[None]:
    """An error from the engine or the connection to it (the SDK lets requests' own errors through),
    said in one sentence with what was being done."""
    errors = sdk_errors()
    import requests

    try:
        yield
    except errors.APIError as error:
        raise DockerUnavailable(f"Docker could not {doing}: {error.explanation or error}") from None
    except (errors.DockerException, requests.RequestException) as error:
        raise DockerUnavailable(f"Docker could not {doing}: {error}") from None


def remove_container(name: str) -> bool:
    """Remove a container, running or not; False when there was none to remove (or no engine to ask)."""
    try:
        with engine_errors(f"remove the container {name}"):
            client().api.remove_container(name, force=True)
    except DockerUnavailable:
        return False
    return True


def check_engine() -> str:
    """The engine's version, or DockerUnavailable saying it is not reachable."""
    engine = client()
    try:
        with engine_errors("say which version it is"):
            return str(engine.version().get("Version", ""))
    except DockerUnavailable:
        raise DockerUnavailable(NO_ENGINE) from None


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


def image_present(tag: str) -> bool:
    engine = client()
    with engine_errors(f"look up the image {tag}"):
        try:
            engine.images.get(tag)
        except sdk_errors().ImageNotFound:
            return False
    return True


def worker_image(base: str = DEFAULT_BASE) -> str:
    """The worker image for this oomlab version and base, built once and reused."""
    tag = f"oomlab-worker:{__version__}-{source_digest()}-{base.replace(':', '-').replace('/', '-')}"
    if image_present(tag):
        return tag
    if not image_present(base):
        raise DockerUnavailable(
            f"the base image {base} is not present and no registry may be reachable; "
            f"build or load it, or set OOMLAB_DOCKER_BASE"
        )
    with tempfile.TemporaryDirectory(dir=temp_dir()) as context:
        shutil.copy(os.path.join(PROJECT, "workers", "Dockerfile"), context)
        _make_wheelhouse(os.path.join(context, "wheels"))
        _build(context, base, tag)
    _remove_older_images(tag)
    return tag


def _make_wheelhouse(wheels: str) -> None:
    """oomlab and its dependencies as wheels made by the host's pip: the image installs them with no index."""
    # async-timeout: redis needs it below Python 3.11.3 (Debian's 3.11.2), which the host may not be
    wheels = os.path.abspath(wheels)  # pip works in a directory of its own
    made = run_python(
        "-m",
        "pip",
        "wheel",
        "-q",
        "--wheel-dir",
        wheels,
        f"{PROJECT}[{IMAGE_EXTRAS}]",
        "async-timeout",
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        raise DockerUnavailable(f"could not make the wheelhouse for the worker image: {made.stderr.strip()[-300:]}")


def _build(context: str, base: str, tag: str) -> None:
    engine = client()
    doing = f"build the worker image from workers/Dockerfile on {base}"
    with engine_errors(doing):
        try:
            engine.images.build(
                path=context,
                buildargs={"BASE": base, "EXTRAS": IMAGE_EXTRAS},
                target="lab",  # the stage oomlab runs its own commands in; the `agent` stage after it is not built
                tag=tag,
                rm=True,
                forcerm=True,
                timeout=BUILD_TIMEOUT_S,
            )
        except sdk_errors().BuildError as error:
            raise DockerUnavailable(f"Docker could not {doing}: {_last_lines(error.build_log)[-300:]}") from None


def _last_lines(build_log: Iterable[dict[str, Any]]) -> str:
    """The build's own output (the failing step's message is at its end), as one line."""
    said = [str(chunk.get("stream") or chunk.get("error") or "").strip() for chunk in build_log]
    return " ".join(line for line in said if line)


def _remove_older_images(current: str) -> None:
    """Images of earlier code on the same base: one per code change would pile up otherwise. An image
    a container still uses is kept (no force)."""

    def base_of(tag: str) -> str:  # oomlab-worker:<version>-<digest>-<base>
        return tag.split(":", 1)[-1].split("-", 2)[-1]

    engine = client()
    with engine_errors("list the worker images"):
        listed = [tag for image in engine.images.list(name="oomlab-worker") for tag in image.tags]
    for tag in listed:
        if tag != current and base_of(tag) == base_of(current):
            try:
                engine.images.remove(tag)
            except sdk_errors().APIError:  # in use by a container (of another run): kept
                pass
