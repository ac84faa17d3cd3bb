"""The Docker backend against a real Docker engine (in CI, .ci/run installs and starts one, and builds
the base image offline; a missing engine fails these tests with exit code 8, it does not skip them).
oomlab talks to the engine through its API: a `docker` command first on PATH that only leaves a mark
proves it never runs the CLI (the tests themselves use the CLI, as an independent witness)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import assert_nothing_left, oomlab_cmd, wait_for_tasks_running

pytestmark = [pytest.mark.integration, pytest.mark.docker]

ARGS = (
    "--memory",
    "256MiB",
    "--tasks",
    "4",
    "--param",
    "sizes=32,64",
    "--param",
    "over=0",
    "--param",
    "hold=0.2",
    "--concurrency",
    "1",
)


@dataclass
class DockerCommandTrap:
    env: dict[str, str]  # PATH with the trap first
    mark: Path

    def assert_unused(self) -> None:
        assert not self.mark.exists(), f"oomlab ran the docker command: {self.mark.read_text()}"


@pytest.fixture
def docker_command_trap(tmp_path) -> DockerCommandTrap:
    trap = tmp_path / "trap"
    trap.mkdir()
    mark = tmp_path / "docker-command-ran"
    command = trap / "docker"
    command.write_text(f'#!/bin/sh\necho "docker $*" >> {mark}\nexit 1\n')
    command.chmod(0o755)
    return DockerCommandTrap({"PATH": f"{trap}:{os.environ['PATH']}"}, mark)


def container_exists(name: str) -> bool:
    return subprocess.run(["docker", "inspect", name], capture_output=True).returncode == 0


def peaks_above_start(record: dict) -> list[int]:
    return [t["peak_above_start_bytes"] for t in sorted(record["tasks"], key=lambda t: t["sent_mono"])]


def test_the_same_scenario_gives_the_same_peaks_on_both_backends(oomlab, docker_command_trap):
    local = oomlab("run", "alloc", *ARGS)
    docker = oomlab("run", "alloc", "--placement", "docker", *ARGS, env=docker_command_trap.env, timeout=300)
    assert local.code == 0, local.stderr
    assert docker.code == 0, docker.stderr
    record = docker.record
    assert record["group"]["placement"] == "docker" and "/docker/" in record["group"]["path"]
    assert record["worker"]["container"]["oom_killed"] is False
    for here, there in zip(peaks_above_start(local.record), peaks_above_start(record), strict=True):
        assert abs(here - there) <= 0.05 * here, (here, there)
    assert_nothing_left(record["run_id"])
    assert not container_exists(record["worker"]["container"]["name"]), "container left behind"
    docker_command_trap.assert_unused()


def test_an_oom_kill_in_a_container_is_attributed_and_docker_says_oomkilled(oomlab, docker_command_trap):
    result = oomlab(
        "run",
        "alloc",
        "--placement",
        "docker",
        "--memory",
        "192MiB",
        "--tasks",
        "3",
        "--param",
        "every=3",
        "--param",
        "sizes=16",
        env=docker_command_trap.env,
        timeout=300,
    )
    assert result.code == 0, result.stderr
    record = result.record
    [kill] = record["kills"]
    assert kill["task_name"] == "alloc.allocate" and kill["role"] == "child"
    assert kill["detected"]["oomlab"] < 0.1
    assert record["worker"]["container"]["oom_killed"] is True
    docker_command_trap.assert_unused()


def test_no_docker_engine_is_one_sentence(oomlab):
    result = oomlab("run", "alloc", "--placement", "docker", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert result.code == 8 and "no Docker engine is reachable" in result.stderr and "Traceback" not in result.stderr


def test_a_limit_below_dockers_minimum_is_bad_input(oomlab):
    result = oomlab("run", "alloc", "--placement", "docker", "--memory", "4MiB")
    assert result.code == 2 and "Docker's smallest memory limit is 6 MiB" in result.stderr


def test_a_start_up_oom_under_a_restart_policy_is_reported_as_a_crash_loop(oomlab, docker_command_trap):
    result = oomlab(
        "run",
        "startup",
        "--variant",
        "preload",
        "--placement",
        "docker",
        "--docker-restart",
        "on-failure",
        "--memory",
        "128MiB",
        "--concurrency",
        "1",
        env=docker_command_trap.env,
        timeout=300,
    )
    assert result.code == 4, result.stderr
    assert "crash loop: the container was restarted" in result.stderr and "one kill every" in result.stderr
    loop = result.record["worker"]["crash_loop"]
    assert loop["restarts"] >= 3 and loop["kills"] >= 3 and all(gap > 0 for gap in loop["kill_intervals_s"])
    # each restart's cgroup is made anew under the same path; the monitor followed it and counted on
    group = result.record["group"]
    assert len(group.get("replaced_mono", [])) >= 2, group
    assert len({k["pid"] for k in result.record["kills"]}) >= 3
    assert_nothing_left(result.record["run_id"])
    docker_command_trap.assert_unused()


def test_a_sigkilled_runs_container_is_removed_by_the_next_run(oomlab, tmp_path, docker_command_trap):
    argv = ["run", "alloc", "--placement", "docker", "--param", "hold=5", "--results", str(tmp_path / "killed")]
    proc = subprocess.Popen(oomlab_cmd(*argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run_dir = wait_for_tasks_running(tmp_path / "killed", timeout=300)
    finally:
        proc.kill()
        proc.wait()
    record = json.load(open(os.path.join(run_dir, "run.json")))
    name = f"oomlab-{record['run_id']}"
    try:
        assert container_exists(name), "the container outlives its run's SIGKILL (else this test proves nothing)"
        result = oomlab("run", "alloc", "--tasks", "1", "--param", "over=0", env=docker_command_trap.env)
        assert result.code == 0, result.stderr
        # this run, or a parallel one (every run sweeps stale leases), removed the container through the API
        assert not container_exists(name), "the next run's sweep removes it"
        assert_nothing_left(record["run_id"])
        docker_command_trap.assert_unused()
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)  # only when the test failed
