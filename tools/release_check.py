"""oomlab built and installed as a user gets it: the sdist and the wheel, the wheel in a fresh venv (not
editable, no system site packages), the main job and the pytest plugin run from that venv.

    python -m tools.release_check          (.ci/run runs it; a minute or so)

Checks: the wheel holds the package `oomlab` only, every module of harness/ and scenarios/ and the
report's assets; the sdist builds the same wheel as the tree; the light core stays light (packages,
size, import time); `oomlab run alloc` exits 0 against the embedded broker; a built-in scenario whose
extra is missing says which one; a tiny pytest project passes with the plugin loaded from its entry
point. Everything goes in one temporary directory, removed at the end, failed or not (also on Ctrl-C
and SIGTERM). Package indexes are the machine's own pip configuration."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the light core's budget: a user's `pip install oomlab` (pip and setuptools of the fresh venv included)
MAX_PACKAGES = 30
MAX_VENV_MB = 120
MAX_IMPORT_MS = 50
# what must never reach the wheel: the repository's other top-level folders
NOT_SHIPPED = ("harness", "scenarios", "workers", "tests", "tools", "bench", "vmlane", "examples", "docs")

PROJECT_APP = """
from celery import Celery

app = Celery("shopapp")
app.conf.task_track_started = True


@app.task
def resize(mib):
    data = b"\\x01" * int(mib * 1024 * 1024)
    return len(data)
"""

PROJECT_TEST = """
import pytest
from oomlab import assert_no_oom, assert_peak_rss_below
from shopapp import resize


@pytest.mark.peak_rss_below("150 MiB")
def test_marker(oomlab_worker):
    assert resize.delay(20).get(timeout=60) == 20 * 1024 * 1024


def test_assertions(oomlab_worker):
    task = assert_peak_rss_below(resize.delay(10), "150 MiB")
    assert task.peak_is_exact and task.peak_rss_bytes > 10 * 1024 * 1024
    assert_no_oom()
"""


class CheckFailed(Exception):
    pass


def step(text: str) -> None:
    print(f"release check: {text}", flush=True)


def child(argv: list[str], *, cwd: str | None = None, env: dict | None = None, timeout: float = 300):
    """subprocess.run, but a check stopped midway (Ctrl-C, SIGTERM, a timeout) asks the child to stop
    with SIGTERM and waits for it: an `oomlab run` then removes its worker and cgroup itself."""
    with subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except BaseException:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


def run(argv: list[str], *, cwd: str | None = None, env: dict | None = None, timeout: float = 300) -> str:
    """stdout of a command that must succeed; its output in the failure otherwise."""
    done = child(argv, cwd=cwd, env=env, timeout=timeout)
    if done.returncode != 0:
        raise CheckFailed(
            f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}".rstrip()
        )
    return done.stdout


def clean_env() -> dict[str, str]:
    """The environment of a user's shell: nothing of this repository or its venv on the paths."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def copy_tree(dest: str) -> None:
    """The files git knows (committed or not, ignored ones left out): no build/ or .venv/ leaks in,
    and building never writes into the repository."""
    names = run(["git", "-C", REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard"]).split("\0")
    for name in filter(None, names):
        source = os.path.join(REPO, name)
        if os.path.isfile(source):
            os.makedirs(os.path.dirname(os.path.join(dest, name)), exist_ok=True)
            shutil.copy2(source, os.path.join(dest, name))


def build(src: str, outdir: str, *what: str) -> None:
    """`python -m build`; without an index to fetch the build backend from, the installed one."""
    argv = [sys.executable, "-m", "build", *what, "--outdir", outdir, src]
    try:
        run(argv, env=clean_env())
    except CheckFailed:
        step("isolated build failed; building with the installed setuptools (--no-isolation)")
        run([*argv[:3], "--no-isolation", *argv[3:]], env=clean_env())


def only(directory: str, suffix: str) -> str:
    found = [name for name in os.listdir(directory) if name.endswith(suffix)]
    if len(found) != 1:
        raise CheckFailed(f"expected one {suffix} in {directory}, found {found}")
    return os.path.join(directory, found[0])


def wheel_files(path: str) -> dict[str, str]:
    """Each file of a wheel and its content's hash (RECORD left out: it lists the same hashes)."""
    with zipfile.ZipFile(path) as wheel:
        return {
            name: hashlib.sha256(wheel.read(name)).hexdigest()
            for name in wheel.namelist()
            if not name.endswith(".dist-info/RECORD")
        }


def check_wheel(files: dict[str, str], src: str) -> None:
    top = {name.split("/")[0] for name in files}
    extra = sorted(name for name in top if name != "oomlab" and not name.endswith(".dist-info"))
    if extra or any(name in top for name in NOT_SHIPPED):
        raise CheckFailed(f"the wheel holds more than the package oomlab: {extra}")
    expected = []
    for folder, package in (("harness", "oomlab"), ("scenarios", "oomlab/scenarios")):
        for root, _, names in os.walk(os.path.join(src, folder)):
            for name in names:
                if name.endswith(".py") or os.path.basename(root) == "assets":
                    relative = os.path.relpath(os.path.join(root, name), os.path.join(src, folder))
                    expected.append(f"{package}/{relative}")
    missing = sorted(name for name in expected if name not in files)
    if missing:
        raise CheckFailed(
            f"the wheel lacks {len(missing)} file(s) (a package missing from pyproject's list?): {missing[:8]}"
        )
    if not any(name.startswith("oomlab/report/assets/") for name in files):
        raise CheckFailed("the wheel lacks report.html's assets (oomlab/report/assets/)")
    step(f"wheel: {len(files)} files, only oomlab/ and its dist-info; every module and asset is in it")


def venv_python(venv: str) -> str:
    return os.path.join(venv, "bin", "python")


def measure_core(venv: str) -> None:
    packages = run([venv_python(venv), "-m", "pip", "list", "--format=freeze"], env=clean_env()).split()
    size_mb = sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(venv)
        for name in names
        if not os.path.islink(os.path.join(root, name))
    ) / (1 << 20)
    best_ms = min(import_ms(venv) for _ in range(5))  # best of five: the machine may be busy
    step(f"light core: {len(packages)} packages, {size_mb:.0f} MiB venv, `import oomlab` {best_ms:.1f} ms")
    if len(packages) > MAX_PACKAGES or size_mb > MAX_VENV_MB or best_ms > MAX_IMPORT_MS:
        raise CheckFailed(
            f"the light core grew past its budget ({MAX_PACKAGES} packages, {MAX_VENV_MB} MiB, "
            f"{MAX_IMPORT_MS} ms import): {', '.join(packages)}"
        )


def import_ms(venv: str) -> float:
    done = child([venv_python(venv), "-X", "importtime", "-c", "import oomlab"], env=clean_env(), cwd=venv)
    line = next(line for line in done.stderr.splitlines() if line.rstrip().endswith("| oomlab"))
    return int(line.split("|")[1]) / 1000


def run_main_job(venv: str, work: str) -> None:
    oomlab = os.path.join(venv, "bin", "oomlab")
    results = os.path.join(work, "results")
    done = child([oomlab, "run", "alloc", "--tasks", "2", "--results", results], cwd=work, env=clean_env(), timeout=180)
    if done.returncode != 0:
        raise CheckFailed(f"oomlab run alloc exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    run_dir = done.stdout.strip().splitlines()[-1]
    for name in ("run.json", "report.html"):
        if not os.path.isfile(os.path.join(run_dir, name)):
            raise CheckFailed(f"oomlab run alloc left no {name} in {run_dir}")
    if "timeline.png needs matplotlib" not in done.stderr:
        raise CheckFailed(f"the light core's run did not say what timeline.png needs: {done.stderr.strip()[-2000:]}")
    step(f"oomlab run alloc --tasks 2: exit 0, run.json and report.html ({os.path.basename(run_dir)})")

    done = child([oomlab, "run", "native-alloc", "--results", results], cwd=work, env=clean_env())
    wanted = "pip install 'oomlab[scenarios]'"
    if done.returncode != 6 or wanted not in done.stderr or "Traceback" in done.stderr:
        raise CheckFailed(f"native-alloc without numpy: exit {done.returncode}, {done.stderr.strip()[-2000:]}")
    step(f"oomlab run native-alloc without the extra: exit 6, {done.stderr.strip()}")


def run_plugin_project(venv: str, work: str) -> None:
    run([venv_python(venv), "-m", "pip", "install", "-q", "pytest"], env=clean_env())
    project = os.path.join(work, "project")
    os.makedirs(project)
    files = {
        "shopapp.py": PROJECT_APP,
        "test_shop.py": PROJECT_TEST,
        "pytest.ini": f"[pytest]\noomlab_app = shopapp:app\noomlab_memory = 200MiB\n"
        f"oomlab_results = {os.path.join(work, 'plugin-results')}\n",
    }
    for name, text in files.items():
        with open(os.path.join(project, name), "w") as handle:
            handle.write(text)
    out = run([venv_python(venv), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project, env=clean_env())
    if not re.search(r"\b2 passed\b", out):
        raise CheckFailed(f"the plugin's project did not pass both tests:\n{out[-2000:]}")
    step("pytest plugin (from its entry point): a project's marker and assertions pass against a real worker")


def check(work: str) -> None:
    src = os.path.join(work, "src")
    copy_tree(src)
    from_sdist, from_tree = os.path.join(work, "dist"), os.path.join(work, "tree")
    build(src, from_sdist)  # the sdist, then the wheel built from it
    build(src, from_tree, "--wheel")
    wheel = only(from_sdist, ".whl")
    step(f"built {os.path.basename(only(from_sdist, '.tar.gz'))} and {os.path.basename(wheel)}")
    files = wheel_files(wheel)
    if files != wheel_files(only(from_tree, ".whl")):
        differ = sorted(set(files.items()) ^ set(wheel_files(only(from_tree, ".whl")).items()))
        raise CheckFailed(f"the sdist builds a different wheel than the tree: {differ[:8]}")
    step("the sdist builds the same wheel as the tree")
    check_wheel(files, src)

    venv = os.path.join(work, "venv")
    run([sys.executable, "-m", "venv", venv], env=clean_env())
    run([venv_python(venv), "-m", "pip", "install", "-q", wheel], env=clean_env(), timeout=600)
    measure_core(venv)
    run_main_job(venv, work)
    run_plugin_project(venv, work)


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through the finally that removes the temporary directory


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="oomlab-release-")
    try:
        check(work)
    except CheckFailed as failure:
        print(f"release check failed: {failure}", file=sys.stderr)
        return 1
    except subprocess.TimeoutExpired as late:
        print(f"release check failed: {' '.join(map(str, late.cmd))} took over {late.timeout:g} s", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    step(f"passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
